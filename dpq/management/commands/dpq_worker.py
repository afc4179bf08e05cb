"""``manage.py dpq_worker [QUEUE] --threads N``: run a worker pool for a queue."""

from __future__ import annotations

import argparse
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.module_loading import import_string

from dpq.commands import Worker
from dpq.queue import Queue


class Command(Worker):
    help = (
        "Process jobs of a dpq queue. QUEUE is the dotted path of a Queue instance "
        "(myapp.queue.queue); without it, the DPQ_QUEUE setting names it."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "queue_path",
            nargs="?",
            metavar="QUEUE",
            help="Dotted path to a Queue instance (default: settings.DPQ_QUEUE).",
        )
        parser.add_argument(
            "--backend",
            metavar="ALIAS",
            help="Run the tasks of this TASKS backend (a dpq.tasks.DpqBackend) instead "
            "of a QUEUE.",
        )
        parser.add_argument(
            "--queue-name",
            metavar="NAME",
            help="With --backend: the backend's queue to run (default: 'default', or the "
            "backend's only queue).",
        )
        super().add_arguments(parser)

    def get_queue(self, **options: Any) -> Queue:
        if options.get("backend"):
            if options.get("queue_path"):
                raise CommandError(
                    "pass a QUEUE or --backend, not both: --backend runs the tasks of a "
                    "TASKS backend, QUEUE a dpq queue of your own"
                )
            return tasks_queue(options["backend"], options.get("queue_name"))
        if options.get("queue_name"):
            raise CommandError(
                "--queue-name needs --backend: it names a queue of a TASKS backend"
            )
        path = options.get("queue_path") or getattr(settings, "DPQ_QUEUE", None)
        if not path:
            raise CommandError(
                "no queue given: pass its dotted path (manage.py dpq_worker myapp.queue.queue) "
                "or set DPQ_QUEUE = 'myapp.queue.queue' in your settings"
            )
        try:
            queue = import_string(path)
        except ImportError as exc:
            raise CommandError(f"cannot import the queue {path!r}: {exc}") from exc
        if not isinstance(queue, Queue):
            raise CommandError(
                f"{path!r} is a {type(queue).__name__}, not a dpq Queue "
                f"(AtLeastOnceQueue or AtMostOnceQueue)"
            )
        return queue


def tasks_queue(alias: str, queue_name: str | None) -> Queue:
    """The dpq queue of the TASKS backend ``alias`` that runs its queue ``queue_name``."""
    from dpq.tasks import DpqBackend, compat

    configured = getattr(settings, "TASKS", None) or {}
    if alias not in configured:
        known = ", ".join(sorted(configured)) or "none"
        raise CommandError(
            f"--backend {alias!r}: TASKS has no backend by that name (known: {known})"
        )
    try:
        backend = compat.task_backends[alias]
    except compat.InvalidTaskBackend as exc:
        raise CommandError(f"--backend {alias!r}: {exc}") from exc
    if not isinstance(backend, DpqBackend):
        raise CommandError(
            f"--backend {alias!r} is a {type(backend).__name__}; dpq_worker runs the tasks "
            f"of a dpq.tasks.DpqBackend only"
        )
    if queue_name is None:
        queues = sorted(backend.queues)
        queue_name = queues[0] if len(queues) == 1 else compat.DEFAULT_TASK_QUEUE_NAME
    if backend.queues and queue_name not in backend.queues:
        raise CommandError(
            f"--queue-name {queue_name!r}: backend {alias!r} has no such queue (its QUEUES: "
            f"{', '.join(sorted(backend.queues))})"
        )
    return backend.queue(queue_name)
