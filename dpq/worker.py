"""The worker process: a pool of threads, each with its own connection, and a dispatcher.

The main thread LISTENs on its own connection and wakes one idle thread per notification.
A thread that claims a job wakes the next idle one before running it, so one notification
for a batch of jobs fans out over the pool. Without notifications the dispatcher checks
for ready work every ``delay`` seconds, and sooner when a delayed job falls due.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg2
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.utils import timezone

from dpq import sql

if TYPE_CHECKING:
    from dpq.models import BaseJob
    from dpq.queue import Queue, RunResult

logger = logging.getLogger(__name__)

# Reconnect backoff after a lost connection: quick first, then at most every 10 s.
RECONNECT_MIN_DELAY = 0.2
RECONNECT_MAX_DELAY = 10.0
# What PostgreSQL says when it ends a session that sat idle inside its transaction.
IDLE_TIMEOUT_MESSAGE = "idle-in-transaction timeout"


@dataclass(frozen=True)
class WorkerOptions:
    threads: int = 1
    listen: bool | None = None  # None: listen when the queue has a notify channel
    delay: float = 1.0
    burst: bool = False
    max_jobs: int | None = None
    grace: float = 30.0
    batch: int = 1
    batch_ms: float = 50.0
    processes: int = 1


def application_name(queue_name: str, role: str) -> str:
    """``dpq:<queue>:<host>:<pid>:<role>``, cut to PostgreSQL's 63 bytes (queue and host first)."""
    host = socket.gethostname().split(".")[0]
    tail = f":{os.getpid()}:{role}"
    room = 63 - len("dpq:") - len(tail) - 1
    queue_part = queue_name.encode()[: max(8, room // 2)].decode(errors="ignore")
    host_part = host.encode()[: max(0, room - len(queue_part.encode()))].decode(
        errors="ignore"
    )
    return f"dpq:{queue_part}:{host_part}{tail}"[:63]


def describe_database(using: str) -> str:
    """The database a worker uses, for logs: user@host:port/name, never the password."""
    params = connections[using].settings_dict
    host = params.get("HOST") or "local socket"
    port = f":{params['PORT']}" if params.get("PORT") else ""
    user = f"{params['USER']}@" if params.get("USER") else ""
    return f"{user}{host}{port}/{params.get('NAME')}"


class SoloGate:
    """A readers-writer lock that lets a suspect job run alone.

    Ordinary runs hold it shared. A job that was running when a worker died takes it
    exclusively: it waits for the running jobs to finish, and while it waits or runs no
    thread claims anything (waiting writers block new readers), so if it kills the process
    again, it dies alone and the crash is its own.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    def acquire_shared(self) -> None:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1

    def release_shared(self) -> None:
        with self._cond:
            self._shared -= 1
            self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class WorkerThread(threading.Thread):
    """Claims and runs jobs on its own database connection until the pool stops."""

    def __init__(self, pool: WorkerPool, number: int) -> None:
        super().__init__(name=f"dpq-worker-{number}", daemon=True)
        self.pool = pool
        self.number = number
        self.wake = threading.Event()
        self.role = f"t{number}"
        # The connection's idle_in_transaction_session_timeout in seconds (0: off), and when
        # the current claim began: a lost connection can then be explained.
        self.idle_timeout = 0.0
        self.claim_started = 0.0

    def run(self) -> None:
        pool = self.pool
        failures = 0
        try:
            while not pool.stopping.is_set():
                if not pool.reserve_job():
                    break
                try:
                    ran = self.run_one()
                    failures = 0
                except Exception as exc:  # outside any task: log, reconnect, go on
                    pool.release_job()
                    failures += 1
                    self.handle_error(exc, failures)
                    continue
                if ran:
                    continue
                pool.release_job()
                if pool.options.burst:
                    break
                pool.idle(self)
        finally:
            connections[pool.queue.using].close()
            pool.thread_finished(self)

    def ensure_connection(self) -> None:
        connection = connections[self.pool.queue.using]
        if connection.connection is None or connection.connection.closed:
            connection.ensure_connection()
            name = application_name(self.pool.queue.name, self.role)
            with connection.cursor() as cursor:
                cursor.execute(sql.SET_WORKER_CONNECTION, {"name": name})
                self.idle_timeout = cursor.fetchone()[1] / 1000

    def run_one(self) -> bool:
        """Claim one job and run it; False when no job was ready."""
        pool = self.pool
        queue = pool.queue
        self.ensure_connection()
        self.claim_started = time.monotonic()
        if pool.options.batch > 1:
            return self.run_batch()
        if queue.at_most_once:
            pool.gate.acquire_shared()
            try:
                jobs = queue.claim()
                if not jobs:
                    return False
                pool.wake_one()
                pool.note_result(
                    queue.process_job(jobs[0], solo=pool.options.threads == 1)
                )
            finally:
                pool.gate.release_shared()
            return True
        suspect = None
        with transaction.atomic(using=queue.using):
            pool.gate.acquire_shared()
            try:
                jobs = queue.claim()
                if not jobs:
                    return False
                job = jobs[0]
                pool.wake_one()
                if self.is_suspect(job):
                    # Give the claim back rather than wait for the other threads' jobs with
                    # it open: an idle transaction holds back vacuum, and
                    # idle_in_transaction_session_timeout would end it, charging the
                    # suspect a crash it never had.
                    transaction.set_rollback(True, using=queue.using)
                    suspect = job
                else:
                    pool.note_result(
                        queue.process_job(job, solo=pool.options.threads == 1)
                    )
            finally:
                pool.gate.release_shared()
        if suspect is not None:
            return self.run_suspect(suspect)
        return True

    def run_batch(self) -> bool:
        """Lock up to --batch jobs, run them in one transaction, then run suspects alone."""
        pool = self.pool
        queue = pool.queue
        suspects: list[BaseJob] = []
        # --max-jobs counts jobs, not batches: run() reserved the first job, the rest are
        # reserved here, and those that do not run are given back.
        extra = pool.reserve_more(pool.options.batch - 1)
        ran = 0
        try:
            with transaction.atomic(using=queue.using):
                pool.gate.acquire_shared()
                try:
                    jobs = queue.lock_batch(1 + extra)
                    if not jobs:
                        return False
                    pool.wake_one()
                    batch = []
                    for job in jobs:
                        (suspects if self.is_suspect(job) else batch).append(job)
                    deadline = time.monotonic() + pool.options.batch_ms / 1000
                    results = queue.process_batch(
                        batch, deadline=deadline, should_stop=pool.stopping.is_set
                    )
                    for result in results:
                        pool.note_result(result)
                finally:
                    pool.gate.release_shared()
            ran = len(results)
            # A suspect runs alone, in a transaction of its own, once the batch is committed
            # and no other thread runs a job (no claim is held open while waiting for that).
            for suspect in suspects:
                self.log_suspect(suspect)
                with pool.gate.exclusive(), transaction.atomic(using=queue.using):
                    for job in queue.claim_by_id([suspect.id]):
                        ran += 1
                        pool.note_result(queue.process_job(job, solo=True))
        finally:
            pool.release_job(extra - max(0, ran - 1))
        return True

    def is_suspect(self, job: BaseJob) -> bool:
        queue = self.pool.queue
        return (
            queue.has_crash_accounting
            and (self.pool.options.threads > 1 or self.pool.options.batch > 1)
            and job.starts > 0
            and job.solo_starts < queue.crash_limit
        )

    def log_suspect(self, suspect: BaseJob) -> None:
        logger.warning(
            "Job %s (%s) was running when a worker died (%s starts, %s alone); running it alone",
            suspect.id,
            suspect.task,
            suspect.starts,
            suspect.solo_starts,
            extra={
                "job_id": suspect.id,
                "task": suspect.task,
                "queue": self.pool.queue.name,
            },
        )

    def run_suspect(self, suspect: BaseJob) -> bool:
        """Once no other thread runs a job, claim again and run the claimed job alone.

        The claim usually returns the suspect again (it was the best ready job a moment
        ago); whatever it returns runs alone, so a death during it is that job's own.
        """
        pool = self.pool
        queue = pool.queue
        self.log_suspect(suspect)
        with pool.gate.exclusive(), transaction.atomic(using=queue.using):
            jobs = queue.claim()
            for job in jobs:
                pool.note_result(queue.process_job(job, solo=True))
        return bool(jobs)

    def handle_error(self, exc: BaseException, failures: int) -> None:
        connection = connections[self.pool.queue.using]
        delay = min(RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY * 2 ** (failures - 1))
        # libpq rarely passes PostgreSQL's reason on: the server's message is lost when the
        # next statement meets the closed socket. A claim held open longer than the timeout
        # is the telling sign.
        held = time.monotonic() - self.claim_started
        if _caused_by_idle_timeout(exc) or (
            self.idle_timeout
            and held > self.idle_timeout
            and isinstance(exc, OperationalError | InterfaceError)
        ):
            logger.warning(
                "Worker thread %s lost its database connection after holding a job's "
                "transaction open for %.1fs, longer than idle_in_transaction_session_timeout "
                "(%gs): PostgreSQL ends a transaction that sits idle that long. The job "
                "returns to the queue and counts as a crash. Raise that setting for the "
                "worker's role or make the task shorter. Reconnecting in %.1fs",
                self.role,
                held,
                self.idle_timeout,
                delay,
            )
        elif isinstance(exc, OperationalError | InterfaceError) or not _is_usable(
            connection
        ):
            logger.warning(
                "Worker thread %s lost its database connection (%s); reconnecting in %.1fs",
                self.role,
                str(exc).strip().splitlines()[0]
                if str(exc).strip()
                else type(exc).__name__,
                delay,
            )
        else:
            logger.exception(
                "Worker thread %s: error outside a task; retrying in %.1fs",
                self.role,
                delay,
            )
        connection.close()
        self.pool.stopping.wait(delay)


def _caused_by_idle_timeout(exc: BaseException | None) -> bool:
    """Whether PostgreSQL's idle-in-transaction timeout is behind ``exc``.

    Only the first statement after the timeout gets PostgreSQL's message; what reaches the
    thread is usually a later error on the closed connection (putting the job back), which
    carries the first one as its context.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if IDLE_TIMEOUT_MESSAGE in str(exc):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _is_usable(connection: Any) -> bool:
    try:
        return connection.connection is not None and connection.is_usable()
    except DatabaseError:
        return False


class WorkerPool:
    """N worker threads for one queue, and the dispatcher that wakes them."""

    def __init__(self, queue: Queue, options: WorkerOptions) -> None:
        if options.threads < 1:
            raise ValueError(f"threads must be >= 1, got {options.threads}")
        if options.batch > 1 and queue.at_most_once:
            raise ValueError(
                f"--batch needs at-least-once delivery: queue {queue.name!r} is an "
                f"AtMostOnceQueue, whose claim commits before each job runs"
            )
        self.queue = queue
        self.options = options
        self.listen = (
            bool(queue.notify_channel) if options.listen is None else options.listen
        )
        if self.listen and not queue.notify_channel:
            raise ValueError(
                f"cannot listen: queue {queue.name!r} has no notify_channel; "
                f"build it with notify_channel='...' or run without --listen"
            )
        self.gate = SoloGate()
        self.stopping = threading.Event()
        self.jobs_started = 0
        self._lock = threading.Lock()
        self._idle: list[WorkerThread] = []
        self._pending_wakes = 0
        self._due_hint: float | None = None
        self._threads: list[WorkerThread] = []
        self._running_threads = 0
        self._signals = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._listener: Any = None
        # Set in a child of --processes: the supervisor forwards signals, and the child stops
        # by itself if the supervisor dies.
        self.supervisor_pid: int | None = None

    # --- Coordination between threads ------------------------------------------------

    def reserve_job(self) -> bool:
        """Count a job towards --max-jobs before claiming it; False once the limit is reached."""
        with self._lock:
            if (
                self.options.max_jobs is None
                or self.jobs_started < self.options.max_jobs
            ):
                self.jobs_started += 1
                return True
        # Outside the lock: stop() takes it too, and threading.Lock is not reentrant.
        self.stop()
        return False

    def reserve_more(self, wanted: int) -> int:
        """Count up to ``wanted`` more jobs towards --max-jobs (a batch's); return how many."""
        with self._lock:
            if self.options.max_jobs is not None:
                wanted = min(wanted, self.options.max_jobs - self.jobs_started)
            wanted = max(0, wanted)
            self.jobs_started += wanted
            return wanted

    def release_job(self, count: int = 1) -> None:
        with self._lock:
            self.jobs_started -= count

    def wake_one(self) -> None:
        """Wake one idle thread; remembered if none is idle, so a wake-up is never lost."""
        with self._lock:
            if self._idle:
                self._idle.pop().wake.set()
            elif self._pending_wakes < self.options.threads:
                self._pending_wakes += 1

    def idle(self, thread: WorkerThread) -> None:
        """Wait until the dispatcher or another thread wakes this one (or the pool stops)."""
        with self._lock:
            if self._pending_wakes:
                self._pending_wakes -= 1
                return
            # stop() wakes only the threads idle when it runs: one that stopped in between
            # must not wait, with no timeout, for a wake-up that never comes.
            if self.stopping.is_set():
                return
            thread.wake.clear()
            self._idle.append(thread)
        logger.debug("Worker thread %s is idle", thread.role)
        # No timeout: the dispatcher checks for ready and due jobs once per --delay for the
        # whole process and wakes a thread, so idle threads cost the database nothing.
        thread.wake.wait()
        with self._lock:
            if thread in self._idle:
                self._idle.remove(thread)

    def note_result(self, result: RunResult) -> None:
        """Tell the dispatcher when a job put back for a retry falls due."""
        job, _, exc = result
        if exc is None or job.failed_at is not None:
            return
        due = time.monotonic() + max(
            0.0, (job.execute_at - timezone.now()).total_seconds()
        )
        with self._lock:
            if self._due_hint is None or due < self._due_hint:
                self._due_hint = due
        self._poke()

    def thread_finished(self, thread: WorkerThread) -> None:
        with self._lock:
            self._running_threads -= 1
            if thread in self._idle:
                self._idle.remove(thread)
        self._poke()

    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            for thread in self._idle:
                thread.wake.set()
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    # --- The main thread -----------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (signal, --burst, --max-jobs); return the process exit code."""
        self.install_signal_handlers()
        delivery = "at-most-once" if self.queue.at_most_once else "at-least-once"
        logger.info(
            "dpq worker started: queue %r, %s%s, %s, %s delivery, database %s",
            self.queue.name,
            "1 thread"
            if self.options.threads == 1
            else f"{self.options.threads} threads",
            f", batches of up to {self.options.batch} jobs or {self.options.batch_ms:g} ms"
            if self.options.batch > 1
            else "",
            f"listening on {self.queue.notify_channel!r}"
            if self.listen
            else f"polling every {self.options.delay}s",
            delivery,
            describe_database(self.queue.using),
            extra={"queue": self.queue.name, "threads": self.options.threads},
        )
        self._running_threads = self.options.threads
        for number in range(1, self.options.threads + 1):
            thread = WorkerThread(self, number)
            self._threads.append(thread)
            thread.start()
        try:
            self.dispatch()
        finally:
            self.close_listener()
        return self.finish()

    def dispatch(self) -> None:
        """Wake threads on notifications and when delayed jobs fall due, until stopped."""
        failures = 0
        next_check = 0.0
        next_due: float | None = None
        while not self.stopping.is_set():
            if self.supervisor_pid is not None and os.getppid() != self.supervisor_pid:
                logger.error(
                    "The supervisor process is gone; stopping this worker process"
                )
                self.stop()
                break
            with self._lock:
                if self._running_threads == 0:
                    return
                if self._due_hint is not None:
                    if next_due is None or self._due_hint < next_due:
                        next_due = self._due_hint
                    self._due_hint = None
            now = time.monotonic()
            try:
                if self._listener is None:
                    self._listener = self.connect_listener()
                    failures = 0
                    self.wake_one()
                if now >= next_check or (next_due is not None and now >= next_due):
                    has_ready, next_due = self.check_due()
                    next_check = now + self.options.delay
                    if has_ready:
                        self.wake_one()
                timeout = next_check - time.monotonic()
                if next_due is not None:
                    timeout = min(timeout, next_due - time.monotonic())
                readable = self.wait_readable(max(0.0, timeout))
                if self._listener in readable:
                    self._listener.poll()
                    count = len(self._listener.notifies)
                    self._listener.notifies.clear()
                    if count:
                        logger.debug("Woken by %s notification(s)", count)
                        for _ in range(min(count, self.options.threads)):
                            self.wake_one()
                        next_check = (
                            0.0  # a delayed job may have been added: look again
                        )
            except psycopg2.Error as exc:
                failures += 1
                delay = min(
                    RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY * 2 ** (failures - 1)
                )
                logger.warning(
                    "The listening connection was lost (%s); reconnecting in %.1fs",
                    str(exc).strip().splitlines()[0]
                    if str(exc).strip()
                    else type(exc).__name__,
                    delay,
                )
                self.close_listener()
                self.stopping.wait(delay)

    def wait_readable(self, timeout: float) -> list:
        readable, _, _ = select.select([self._listener, self._wake_r], [], [], timeout)
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 1024)
        return readable

    def connect_listener(self) -> Any:
        """The main thread's own connection: LISTEN, and the due-job checks."""
        wrapper = connections[self.queue.using]
        raw = wrapper.get_new_connection(wrapper.get_connection_params())
        raw.autocommit = True
        with raw.cursor() as cursor:
            name = application_name(self.queue.name, "listen")
            cursor.execute(sql.SET_APPLICATION_NAME, {"name": name})
            if self.listen:
                cursor.execute(sql.listen_statement(self.queue.notify_channel))
        return raw

    def check_due(self) -> tuple[bool, float | None]:
        """Is a job ready now, and when (monotonic time) is the next delayed one due?"""
        statement = sql.render(sql.CHECK_DUE_JOBS, self.queue.job_table)
        with self._listener.cursor() as cursor:
            cursor.execute(statement, {"queue": self.queue.name})
            has_ready, next_due_at = cursor.fetchone()
        if next_due_at is None:
            return bool(has_ready), None
        seconds = (next_due_at - timezone.now()).total_seconds()
        return bool(has_ready), time.monotonic() + max(0.0, seconds)

    def close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(psycopg2.Error):
                self._listener.close()
            self._listener = None

    def finish(self) -> int:
        """Wait for the threads (up to --grace once stopping) and close everything."""
        deadline = time.monotonic() + self.options.grace
        for thread in self._threads:
            remaining = deadline - time.monotonic() if self.stopping.is_set() else None
            thread.join(remaining if remaining is None else max(0.0, remaining))
        alive = [t.role for t in self._threads if t.is_alive()]
        if alive:
            logger.error(
                "Grace period of %ss is over and threads %s still run a job; exiting: their "
                "at-least-once jobs roll back and return to the queue",
                self.options.grace,
                ", ".join(alive),
            )
            self.queue.close()
            logging.shutdown()
            os._exit(1)
        self.queue.close()
        logger.info("dpq worker stopped after %s job(s)", self.jobs_started)
        return 0

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self.handle_signal)
        if self.supervisor_pid is None:
            signal.signal(signal.SIGINT, self.handle_signal)
        else:
            # Ctrl-C reaches the whole process group; the supervisor turns it into SIGTERM.
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def handle_signal(self, signum: int, frame: Any) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            logger.info(
                "Received %s: no new jobs are claimed; running jobs may finish for up to %ss "
                "(send it again to exit at once)",
                name,
                self.options.grace,
            )
            self.stop()
            return
        logger.warning(
            "Received %s again: exiting at once; running at-least-once jobs roll back and "
            "return to the queue",
            name,
        )
        logging.shutdown()
        os._exit(1)


def run_worker(queue: Queue, options: WorkerOptions) -> int:
    """Run a worker pool for ``queue``, or --processes of them; return the exit code."""
    if options.processes > 1:
        from dpq.supervisor import Supervisor

        return Supervisor(queue, options).run()
    return WorkerPool(queue, options).run()
