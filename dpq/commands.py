"""``Worker``, the management-command base class of the original package.

Subclass it and set ``queue``::

    class Command(Worker):
        queue = queue

``manage.py <name>`` then runs the same thread pool as ``manage.py dpq_worker``.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import autoreload

from dpq import worker

if TYPE_CHECKING:
    from dpq.queue import Queue

logger = logging.getLogger(__name__)


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {value!r}"
        ) from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {number}")
    return number


def non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, got {value!r}"
        ) from None
    if number < 0 or number != number:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {value}")
    return number


class Worker(BaseCommand):
    help = "Process jobs from a dpq queue with a pool of worker threads."

    # The queue to process. Subclass and set this.
    queue: Queue | None = None
    logger = logger

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--threads",
            type=positive_int,
            default=1,
            help="Worker threads, each with its own database connection (default 1).",
        )
        parser.add_argument(
            "--listen",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Wake up on LISTEN/NOTIFY (default: on when the queue has a notify_channel).",
        )
        parser.add_argument(
            "--delay",
            type=non_negative_float,
            default=1.0,
            help="Seconds between polls for ready jobs when idle (default 1).",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Exit (code 0) once no job is ready: for scripts and CI.",
        )
        parser.add_argument(
            "--max-jobs",
            type=positive_int,
            default=None,
            help="Exit after this many jobs (to recycle the process).",
        )
        parser.add_argument(
            "--grace",
            type=non_negative_float,
            default=30.0,
            help="Seconds running jobs may take to finish after SIGTERM/SIGINT (default 30).",
        )
        parser.add_argument(
            "--processes",
            type=positive_int,
            default=1,
            help="Worker processes of --threads threads each, under a supervisor that restarts "
            "any that dies (default 1: no supervisor).",
        )
        parser.add_argument(
            "--batch",
            type=positive_int,
            default=1,
            help="Jobs a thread claims per transaction (default 1). For many short jobs; "
            "see the README before raising it.",
        )
        parser.add_argument(
            "--batch-ms",
            type=non_negative_float,
            default=50.0,
            help="With --batch: commit after this many milliseconds even if the batch is not "
            "done (default 50).",
        )
        parser.add_argument(
            "--scheduler",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="Enqueue the queue's schedules when no other worker does (default: on).",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            dest="use_reloader",
            help="Restart the worker when code changes (development only).",
        )

    def get_queue(self, **options: Any) -> Queue:
        if self.queue is None:
            raise CommandError(
                f"{type(self).__module__}.Command has no queue: set `queue = <your Queue>` "
                f"on the class"
            )
        return self.queue

    def get_worker_options(self, **options: Any) -> worker.WorkerOptions:
        return worker.WorkerOptions(
            threads=options["threads"],
            listen=options["listen"],
            delay=options["delay"],
            burst=options["burst"],
            max_jobs=options["max_jobs"],
            grace=options["grace"],
            batch=options["batch"],
            batch_ms=options["batch_ms"],
            processes=options["processes"],
            scheduler=options.get("scheduler", True),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queue = self.get_queue(**options)
        worker_options = self.get_worker_options(**options)
        if worker_options.listen and not queue.notify_channel:
            raise CommandError(
                f"--listen needs a notify channel, and queue {queue.name!r} has none: build it "
                f"with notify_channel='...' or drop --listen"
            )
        if worker_options.batch > 1 and queue.at_most_once:
            raise CommandError(
                f"--batch needs at-least-once delivery; queue {queue.name!r} is an "
                f"AtMostOnceQueue, whose claim commits before each job runs"
            )
        if options.get("use_reloader"):
            autoreload.run_with_reloader(self.run_pool, queue, worker_options)
        else:
            self.run_pool(queue, worker_options)

    def run_pool(self, queue: Queue, worker_options: worker.WorkerOptions) -> None:
        code = worker.run_worker(queue, worker_options)
        if code:
            raise SystemExit(code)
