"""Hide secrets in job args and tracebacks before any page shows them."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from dpq.models import JSONValue

MASK = "********"

# Keys whose values are masked wherever they appear in args, matched as case-insensitive
# substrings after '-' becomes '_' ("X-Api-Key" matches "api_key"). DPQ_ADMIN_SECRET_KEYS
# replaces this list.
DEFAULT_SECRET_KEYS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
    "session",
    "signature",
)


# A secret value shorter than this is masked in args but not looked for in text: "42" would
# mask every line number of a traceback.
MIN_TEXT_SECRET_LENGTH = 4

# The key and separator of key=value, key: value, "key": "value" and 'key': 'value'. The value
# is matched apart (PAIR_VALUE), only after a secret-looking key, so that a pair inside
# another key's value (next=/pay?token=abc) is still found.
PAIR_KEY = re.compile(
    r"""(?P<quote>["']?)(?P<key>[\w.-]+)(?P=quote)[ \t]*(?P<sep>[:=])[ \t]*"""
)
# A quoted string, or a run up to whitespace or a character that ends values in URLs, dicts
# and calls; an HTTP auth scheme is taken with the credential after it.
PAIR_VALUE = re.compile(
    r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'"""
    r"""|(?:(?i:bearer|basic|digest|token)[ \t]+)?[^\s,;&'"(){}\[\]<>]+"""
)
# "TokenError: message" is an exception's name and message in a traceback, not a secret.
EXCEPTION_SUFFIXES = ("error", "exception", "warning")


def secret_keys() -> tuple[str, ...]:
    keys = getattr(settings, "DPQ_ADMIN_SECRET_KEYS", DEFAULT_SECRET_KEYS)
    return tuple(str(key).lower().replace("-", "_") for key in keys)


# Cached: a search masks up to a thousand jobs, whose args mostly repeat the same keys.
@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str, keys: tuple[str, ...]) -> bool:
    normalized = str(key).lower().replace("-", "_")
    return any(secret in normalized for secret in keys)


def mask_secrets(value: JSONValue, keys: tuple[str, ...]) -> JSONValue:
    """Return a copy of ``value`` with the values of secret-looking keys replaced, at any depth."""
    if isinstance(value, dict):
        return {
            key: MASK if is_secret_key(key, keys) else mask_secrets(item, keys)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(item, keys) for item in value]
    return value


def secret_values(value: JSONValue, keys: tuple[str, ...]) -> list[str]:
    """The scalar values under secret-looking keys of ``value``, at any depth, as text."""
    found: list[str] = []

    def collect(item: JSONValue, is_secret: bool) -> None:
        if isinstance(item, dict):
            for key, inner in item.items():
                collect(inner, is_secret or is_secret_key(key, keys))
        elif isinstance(item, list):
            for inner in item:
                collect(inner, is_secret)
        elif is_secret and item is not None and not isinstance(item, bool):
            found.append(str(item))

    collect(value, False)
    return found


def values_pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern of ``values`` in any case, also as JSON or repr() escape them; None if empty."""
    forms = {
        form
        for value in values
        if len(value) >= MIN_TEXT_SECRET_LENGTH
        for form in (
            value,
            json.dumps(value, ensure_ascii=False)[1:-1],
            repr(value)[1:-1],
        )
    }
    if not forms:
        return None
    longest_first = sorted(forms, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, longest_first)), re.IGNORECASE)


def mask_text(
    text: str, keys: tuple[str, ...], values: re.Pattern[str] | None = None
) -> str:
    """Mask the ``values`` pattern wherever it matches ``text``, then the values of
    secret-looking keys in key=value-like pairs."""
    if values is not None:
        text = values.sub(MASK, text)
    return mask_pairs(text, keys)


def mask_pairs(text: str, keys: tuple[str, ...]) -> str:
    """Mask the values of key=value, key: value and quoted pairs whose key looks secret."""
    if ":" not in text and "=" not in text:
        return text
    parts = []
    done = 0
    for pair in PAIR_KEY.finditer(text):
        key = pair["key"]
        if pair.start() < done or not is_secret_key(key, keys):
            continue
        if (
            not pair["quote"]
            and pair["sep"] == ":"
            and key.lower().endswith(EXCEPTION_SUFFIXES)
        ):
            continue
        value = PAIR_VALUE.match(text, pair.end())
        if value is None:
            continue
        quote = value[0][0] if value[0][0] in "\"'" else ""
        parts += [text[done : value.start()], quote, MASK, quote]
        done = value.end()
    return "".join([*parts, text[done:]])


def mask_strings(
    value: JSONValue, keys: tuple[str, ...], values: re.Pattern[str] | None
) -> JSONValue:
    """Return a copy of ``value`` with ``mask_text`` applied to every string in it."""
    if isinstance(value, str):
        return mask_text(value, keys, values)
    if isinstance(value, dict):
        return {key: mask_strings(item, keys, values) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_strings(item, keys, values) for item in value]
    return value


def redact_text(args: JSONValue, text: str) -> str:
    """Return a job's text (its traceback) as a page may show it: the values of the job's
    secret-looking args masked wherever they appear, and secret-looking pairs masked."""
    keys = secret_keys()
    return mask_text(text, keys, values_pattern(secret_values(args, keys)))


def redact_args(queue: str, args: JSONValue) -> JSONValue:
    """Return the args a page may show: secret-looking keys masked, their values and
    secret-looking pairs masked inside every string, then the queue's hook applied.

    ``DPQ_ADMIN_REDACT`` names a function ``fn(queue_name, args) -> args`` that may hide more
    (free-text fields, account numbers); it receives args already masked.
    """
    keys = secret_keys()
    values = values_pattern(secret_values(args, keys))
    shown = mask_strings(mask_secrets(args, keys), keys, values)
    hook_path = getattr(settings, "DPQ_ADMIN_REDACT", None)
    if hook_path:
        hook = import_string(hook_path)
        shown = hook(queue, shown)
    return shown
