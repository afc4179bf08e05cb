"""What a queue checks before it writes: channel names, and one job's fields as statement parameters."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.utils import timezone

from dpq import exceptions
from dpq.models import PRIORITY_MAX, PRIORITY_MIN, JSONValue

# LISTEN truncates longer channel names and pg_notify() rejects them, which would break
# every enqueue: refuse them when the queue is built.
MAX_CHANNEL_BYTES = 63
MAX_QUEUE_NAME_LENGTH = 100


def validate_channel(channel: str | None) -> str | None:
    """Return the channel if PostgreSQL can LISTEN on it, else raise InvalidChannelError."""
    if channel is None:
        return None
    if not isinstance(channel, str):
        raise exceptions.InvalidChannelError(
            f"notify_channel must be a string or None, got {type(channel).__name__} {channel!r}"
        )
    if not channel:
        raise exceptions.InvalidChannelError(
            "notify_channel must not be empty; pass None to work without LISTEN/NOTIFY"
        )
    size = len(channel.encode())
    if size > MAX_CHANNEL_BYTES:
        raise exceptions.InvalidChannelError(
            f"notify_channel {channel!r} is {size} bytes long; PostgreSQL channel names are at "
            f"most {MAX_CHANNEL_BYTES} bytes: choose a shorter name"
        )
    if "\x00" in channel:
        raise exceptions.InvalidChannelError(
            "notify_channel must not contain a NUL character"
        )
    return channel


def item_fields(n: int, item: tuple | Mapping[str, Any]) -> dict[str, Any]:
    """One enqueue_many item as job_params() keywords."""
    if isinstance(item, Mapping):
        unknown = set(item) - {"task", "args", "execute_at", "priority"}
        if "task" not in item or unknown:
            raise exceptions.InvalidJobError(
                f"enqueue_many item {n} must have a 'task' key and only 'args', 'execute_at', "
                f"'priority' besides; got keys {sorted(item)}"
            )
        fields = dict(item)
        fields.setdefault("args", {})
        return fields
    if isinstance(item, tuple) and len(item) == 2:
        return {"task": item[0], "args": item[1]}
    raise exceptions.InvalidJobError(
        f"enqueue_many item {n} must be a (task, args) tuple or a dict, got {item!r}"
    )


def job_params(
    queue: str,
    tasks: Mapping[str, object],
    task: str,
    args: JSONValue,
    execute_at: datetime.datetime | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    """Check one job's fields and return them as statement parameters."""
    if task not in tasks:
        known = ", ".join(sorted(tasks)) or "none"
        raise exceptions.TaskNotRegisteredError(
            f"cannot enqueue {task!r}: queue {queue!r} has no task by that name "
            f"(known: {known}); add it to tasks={{...}}"
        )
    try:
        encoded = json.dumps(args, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise exceptions.InvalidArgsError(
            f"cannot enqueue {task!r}: args must be JSON-serializable ({exc}); pass only "
            f"dicts, lists, strings, numbers, booleans and None, e.g. a date as .isoformat()"
        ) from exc
    if "\\u0000" in encoded:
        raise exceptions.InvalidArgsError(
            f"cannot enqueue {task!r}: args contain a NUL character (\\x00), which "
            f"PostgreSQL's jsonb cannot store; remove it or encode the value (e.g. base64)"
        )
    if execute_at is not None:
        if not isinstance(execute_at, datetime.datetime):
            raise exceptions.InvalidJobError(
                f"cannot enqueue {task!r}: execute_at must be a datetime, "
                f"got {type(execute_at).__name__} {execute_at!r}"
            )
        if settings.USE_TZ and timezone.is_naive(execute_at):
            raise exceptions.InvalidJobError(
                f"cannot enqueue {task!r}: execute_at {execute_at.isoformat()} has no time "
                f"zone while USE_TZ is on; use django.utils.timezone.now() + timedelta(...) "
                f"or make_aware()"
            )
    if priority is None:
        priority = 0
    elif isinstance(priority, bool) or not isinstance(priority, int):
        raise exceptions.InvalidJobError(
            f"cannot enqueue {task!r}: priority must be an integer, "
            f"got {type(priority).__name__} {priority!r}"
        )
    elif not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise exceptions.InvalidJobError(
            f"cannot enqueue {task!r}: priority {priority} is out of range "
            f"({PRIORITY_MIN} to {PRIORITY_MAX})"
        )
    return {
        "task": task,
        "args": encoded,
        "execute_at": execute_at,
        "priority": priority,
        "queue": queue,
    }
