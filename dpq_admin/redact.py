"""Hide secrets in job args before any page shows them."""

from __future__ import annotations

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


def secret_keys() -> tuple[str, ...]:
    keys = getattr(settings, "DPQ_ADMIN_SECRET_KEYS", DEFAULT_SECRET_KEYS)
    return tuple(str(key).lower().replace("-", "_") for key in keys)


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


def redact_args(queue: str, args: JSONValue) -> JSONValue:
    """Return the args a page may show: secret-looking keys masked, then the queue's hook applied.

    ``DPQ_ADMIN_REDACT`` names a function ``fn(queue_name, args) -> args`` that may hide more
    (free-text fields, account numbers); it receives args already masked.
    """
    shown = mask_secrets(args, secret_keys())
    hook_path = getattr(settings, "DPQ_ADMIN_REDACT", None)
    if hook_path:
        hook = import_string(hook_path)
        shown = hook(queue, shown)
    return shown
