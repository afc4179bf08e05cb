"""``Worker``, the management-command base class of the original package.

Subclass it and set ``queue``::

    class Command(Worker):
        queue = queue

``manage.py <name>`` then runs the same thread pool as ``manage.py dpq_worker``. The original's
methods are kept: ``run_available_tasks()`` and ``wait()`` run jobs in the calling thread, and
the pool asks ``handle_shutdown()`` what to do with each stop signal. A subclass that overrides
``run_available_tasks()`` or ``wait()`` runs the original's loop, which calls them, instead of
the pool.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils import autoreload

from dpq import shutdown, sql, worker
from dpq.arguments import seconds_type
from dpq.threads import application_name

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


def port_number(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a port number, got {value!r}"
        ) from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port number from 1 to 65535, got {number}"
        )
    return number


non_negative_float = seconds_type(">=", 0)


class Worker(BaseCommand):
    help = "Process jobs from a dpq queue with a pool of worker threads."

    # The queue to process. Subclass and set this.
    queue: Queue | None = None
    logger = logger
    # The original's state, set by handle(); defaults here so that run_available_tasks() and
    # wait() also work on a command that handle() did not set up (a test, a subclass).
    delay: float = 1.0
    listen: bool = False
    _shutdown = False
    _in_task = False
    # Jobs left before the original's loop stops (--max-jobs); None: no limit.
    _jobs_left: int | None = None

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
            "--heartbeat-file",
            default=None,
            metavar="PATH",
            help="Rewrite PATH every few seconds while the worker's main loop turns, for "
            "manage.py dpq_health --heartbeat-file PATH (liveness probes).",
        )
        parser.add_argument(
            "--metrics-port",
            type=port_number,
            default=None,
            metavar="PORT",
            help="Serve Prometheus metrics on this port (needs the [metrics] extra); "
            "under --processes, one endpoint for all of them.",
        )
        parser.add_argument(
            "--metrics-addr",
            default="0.0.0.0",
            metavar="ADDRESS",
            help="The address --metrics-port listens on (default 0.0.0.0: every interface).",
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
            heartbeat_file=options.get("heartbeat_file"),
            metrics_port=options.get("metrics_port"),
            metrics_addr=options.get("metrics_addr", "0.0.0.0"),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queue = self.get_queue(**options)
        worker_options = self.get_worker_options(**options)
        if worker_options.listen and not queue.notify_channel:
            raise CommandError(
                f"--listen needs a notify channel, and queue {queue.name!r} has none: build it "
                f"with notify_channel='...' or drop --listen"
            )
        if worker_options.metrics_port is not None:
            # Not imported here: under --processes it must be imported after
            # PROMETHEUS_MULTIPROC_DIR is set (dpq/metrics/worker.py).
            if importlib.util.find_spec("prometheus_client") is None:
                raise CommandError(
                    "--metrics-port needs prometheus-client: pip install "
                    "'django-postgres-queue[metrics]'"
                )
        if worker_options.batch > 1 and queue.at_most_once:
            raise CommandError(
                f"--batch needs at-least-once delivery; queue {queue.name!r} is an "
                f"AtMostOnceQueue, whose claim commits before each job runs"
            )
        self.queue = queue
        self._shutdown = False
        self._in_task = False
        self.delay = worker_options.delay
        self.listen = (
            bool(queue.notify_channel)
            if worker_options.listen is None
            else worker_options.listen
        )
        run = self.run_pool
        if self.overrides_original_loop():
            self.check_original_loop_options(worker_options)
            run = self.run_loop
        if options.get("use_reloader"):
            autoreload.run_with_reloader(run, queue, worker_options)
        else:
            run(queue, worker_options)

    def run_pool(self, queue: Queue, worker_options: worker.WorkerOptions) -> None:
        try:
            code = worker.run_worker(
                queue, worker_options, on_stop_signal=self.asks_to_stop
            )
        except ImproperlyConfigured as exc:  # --metrics-port that cannot be served
            raise CommandError(str(exc)) from exc
        if code:
            raise SystemExit(code)

    def asks_to_stop(self, signum: int) -> bool:
        """Whether handle_shutdown() stops the pool on this signal (it raised or set _shutdown).

        The pool's threads run the jobs and the pool waits for them itself (--grace), so to
        handle_shutdown() the caller is never in a task.
        """
        self._shutdown = False
        try:
            self.handle_shutdown(signum, None)
        except InterruptedError:
            return True
        return self._shutdown

    # --- The original package's methods ---------------------------------------------------

    def handle_shutdown(self, sig: int, frame: Any) -> None:
        """Stop after the running job (in a task), or at once: raise InterruptedError."""
        if self._in_task:
            self.logger.info("Waiting for active tasks to finish...")
            self._shutdown = True
        else:
            raise InterruptedError

    def run_available_tasks(self) -> None:
        """Run jobs one at a time in this thread until none is ready.

        Each job is ``queue.run_once()`` on this thread's connection: inside a transaction of
        the caller's (a Django TestCase) the jobs run in it. A job that fails is not claimed
        again by this call. Raises InterruptedError after a job once a stop was asked for.
        """
        queue = self.queue if self.queue is not None else self.get_queue()
        # Prevents tasks that failed from blocking others.
        failed_ids: set[int] = set()
        while True:
            self._in_task = True
            try:
                result = queue.run_once(exclude_ids=failed_ids)
            finally:
                self._in_task = False
            job, _, exc = result or (None, None, None)
            if job is not None:
                if exc is not None:
                    failed_ids.add(job.id)
                if self._jobs_left is not None:
                    self._jobs_left -= 1
                    self._shutdown = self._shutdown or self._jobs_left <= 0
            if self._shutdown:
                raise InterruptedError
            if job is None:
                break

    def wait(self) -> int:
        """Wait ``delay`` seconds, or until a notification (``listen``); return how many came."""
        if self.listen:
            count = len(self.queue.wait(self.delay))
            self.logger.debug("Woke up with %s NOTIFYs.", count)
            return count
        time.sleep(self.delay)
        return 1

    # --- The original's loop, for subclasses that override its methods ---------------------

    def overrides_original_loop(self) -> bool:
        """Whether a subclass overrides run_available_tasks() or wait(): the pool calls neither."""
        cls = type(self)
        return (
            cls.run_available_tasks is not Worker.run_available_tasks
            or cls.wait is not Worker.wait
        )

    def check_original_loop_options(self, options: worker.WorkerOptions) -> None:
        pool_only = [
            name
            for name, value in (
                ("--threads", options.threads),
                ("--processes", options.processes),
                ("--batch", options.batch),
            )
            if value > 1
        ] + [
            name
            for name, value in (
                ("--heartbeat-file", options.heartbeat_file),
                ("--metrics-port", options.metrics_port),
            )
            if value is not None
        ]
        if pool_only:
            raise CommandError(
                f"{type(self).__module__}.Command overrides run_available_tasks() or wait(), "
                f"so it runs the original package's loop, one job at a time in the main "
                f"thread; {', '.join(pool_only)} need the thread pool, which calls neither: "
                f"drop them, or the override"
            )

    def run_loop(self, queue: Queue, worker_options: worker.WorkerOptions) -> None:
        """Run the original package's loop: run_available_tasks(), then wait(), until stopped.

        SIGTERM and SIGINT call handle_shutdown() in the signal handler, as in the original: a
        stop waits for the running job however long it takes (--grace does not apply).
        """
        self._jobs_left = worker_options.max_jobs
        connection = connections[queue.using]
        with connection.cursor() as cursor:
            name = application_name(queue.name, "main")
            cursor.execute(sql.SET_APPLICATION_NAME, {"name": name})
        if self.listen:
            queue.listen()
        self.logger.info(
            "dpq worker started: queue %r, the original loop of %s (one job at a time), %s",
            queue.name,
            type(self).__module__,
            f"listening on {queue.notify_channel!r}"
            if self.listen
            else f"polling every {self.delay}s",
            extra={"queue": queue.name},
        )
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in shutdown.STOP_SIGNALS:
                previous[signum] = signal.signal(signum, self.handle_shutdown)
        try:
            while True:
                self.run_available_tasks()
                if worker_options.burst:
                    break
                self.wait()
        except InterruptedError:
            pass  # a stop signal, or --max-jobs
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            queue.close()
            connection.close()
        self.logger.info("dpq worker stopped", extra={"queue": queue.name})
