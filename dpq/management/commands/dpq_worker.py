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
        super().add_arguments(parser)

    def get_queue(self, **options: Any) -> Queue:
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
