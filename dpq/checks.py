"""System checks: the DPQ_QUEUE setting resolves to a queue."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string


@checks.register()
def check_queue_setting(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    path = getattr(settings, "DPQ_QUEUE", None)
    if path is None:
        return []
    from dpq.exceptions import DpqError
    from dpq.queue import Queue

    if not isinstance(path, str):
        return [
            checks.Error(
                f"DPQ_QUEUE must be a dotted path string, got {type(path).__name__}",
                hint="Set DPQ_QUEUE = 'myapp.queue.queue' (the module and the Queue instance).",
                id="dpq.E001",
            )
        ]
    try:
        queue = import_string(path)
    except ImportError as exc:
        return [
            checks.Error(
                f"DPQ_QUEUE = {path!r} cannot be imported: {exc}",
                hint="Point it at a Queue instance, e.g. 'myapp.queue.queue'.",
                id="dpq.E001",
            )
        ]
    except DpqError as exc:
        # Queue(...) refused its arguments (a bad schedule, say) while the module loaded.
        return [
            checks.Error(
                f"DPQ_QUEUE = {path!r} cannot be built: {exc}",
                hint="Fix the Queue(...) call the message names.",
                id="dpq.E003",
            )
        ]
    if not isinstance(queue, Queue):
        return [
            checks.Error(
                f"DPQ_QUEUE = {path!r} is a {type(queue).__name__}, not a dpq Queue",
                hint="Point it at an AtLeastOnceQueue or AtMostOnceQueue instance.",
                id="dpq.E002",
            )
        ]
    return []
