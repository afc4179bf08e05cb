"""Worker threads: each claims and runs jobs on its own connection until the pool stops.

A job that was running when a worker died (a suspect) runs alone: SoloGate lets ordinary
runs share the pool and makes a suspect wait until it is the only one, so that if it kills
the process again the crash is its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
)

from dpq import driver, events, runner, signals, sql
from dpq.jobs import PreparedClaimMissing
from dpq.options import next_batch_size

if TYPE_CHECKING:
    from dpq.models import BaseJob
    from dpq.worker import WorkerPool

logger = logging.getLogger(__name__)

# Reconnect backoff after a lost connection: quick first, then at most every 10 s.
RECONNECT_MIN_DELAY = 0.2
RECONNECT_MAX_DELAY = 10.0
# What PostgreSQL says when it ends a session that sat idle inside its transaction.
IDLE_TIMEOUT_MESSAGE = "idle-in-transaction timeout"


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
        self.batch_size = pool.options.batch

    def run(self) -> None:
        pool = self.pool
        failures = 0
        try:
            while not pool.stopping.is_set():
                if pool.wait_if_paused(self):
                    if pool.options.burst:
                        break
                    continue
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
        except BaseException:
            # A bug outside run_one()'s handling, or a task's SystemExit: the pool cannot go
            # on a thread short, so it stops and the process exits non-zero.
            logger.exception(
                "Worker thread %s stopped by an unexpected error", self.role
            )
            pool.fail()
        finally:
            try:
                connections[pool.queue.using].close()
            except BaseException:
                logger.exception(
                    "Worker thread %s could not close its connection", self.role
                )
                pool.fail()
            finally:
                pool.thread_finished(self)

    def ensure_connection(self) -> Any:
        """This thread's DatabaseWrapper, connected and set up as a worker's."""
        connection = connections[self.pool.queue.using]
        if connection.connection is None or connection.connection.closed:
            connection.ensure_connection()
            name = application_name(self.pool.queue.name, self.role)
            with connection.cursor() as cursor:
                cursor.execute(sql.SET_WORKER_CONNECTION, {"name": name})
                self.idle_timeout = cursor.fetchone()[1] / 1000
            self.pool.queue.prepare_claim()
            # A worker writes starts all the time: keep the crash-accounting connection.
            self.pool.queue.start_recorder.keep_open = True
            self.relock_lost_claims()
        return connection

    def relock_lost_claims(self) -> None:
        """After a reconnect: the claims the server rolled back are no deaths (see ClaimsInFlight)."""
        queue = self.pool.queue
        relocked = self.pool.claims.relock_lost(queue.using, queue.job_table)
        if relocked:
            logger.info(
                "Jobs %s were running when their worker lost its database connection; "
                "they return to the queue, not counted as crashes",
                ", ".join(map(str, relocked)),
                extra={"job_ids": relocked},
            )

    def run_one(self) -> bool:
        """Claim one job (or --batch jobs) and run it; False when no job was ready."""
        pool = self.pool
        queue = pool.queue
        self.ensure_connection()
        # Connecting (or the solo gate) can take a while: a pause that came meanwhile holds.
        if pool.paused is not None:
            return False
        self.claim_started = time.monotonic()
        if pool.options.batch > 1:
            return self.run_batch()
        solo = pool.options.threads == 1
        pool.gate.acquire_shared()
        try:
            if pool.paused is not None:
                return False
            if queue.at_most_once:
                jobs = queue.claim()
                if not jobs:
                    return False
                pool.wake_one()
                pool.note_result(runner.run_committed_claim(queue, jobs[0]).result)
                return True
            outcome = runner.run_claim(
                queue,
                self.claim_one,
                solo=solo,
                is_suspect=self.is_suspect,
                on_claimed=self.claimed,
            )
            pool.claims.release(self.role)
        finally:
            pool.gate.release_shared()
        for run in outcome.runs:
            pool.note_result(run.result)
        for suspect in outcome.suspects:
            self.run_suspect(suspect, claim_by_id=False)
        return outcome.claimed > 0

    def claim_one(self) -> list[BaseJob]:
        """Claim the best ready job that no other claim of this process holds."""
        return self.pool.queue.claim(
            exclude_ids=self.pool.claims.held_by_others(self.role)
        )

    def claim_batch(self, limit: int) -> list[BaseJob]:
        return self.pool.queue.claim(
            limit=limit, exclude_ids=self.pool.claims.held_by_others(self.role)
        )

    def claimed(self, jobs: list[BaseJob]) -> None:
        """A claim of this thread's took ``jobs``: wake the next idle thread, note the claim."""
        # Noted first: the thread woken next must see these jobs as held.
        self.pool.claims.hold(self.role, jobs)
        self.pool.wake_one()

    def run_batch(self) -> bool:
        """Claim up to --batch jobs, run them in one transaction, then run suspects alone."""
        pool = self.pool
        queue = pool.queue
        # --max-jobs counts jobs, not batches: run() reserved the first job, the rest are
        # reserved here, and those that do not run are given back.
        extra = pool.reserve_more(self.batch_size - 1)
        ran = 0
        try:
            pool.gate.acquire_shared()
            try:
                outcome = runner.run_claim(
                    queue,
                    lambda: self.claim_batch(1 + extra),
                    solo=False,
                    is_suspect=self.is_suspect,
                    on_claimed=self.claimed,
                    time_limit=pool.options.batch_ms / 1000,
                    should_stop=pool.stopping.is_set,
                )
                pool.claims.release(self.role)
            finally:
                pool.gate.release_shared()
            ran = len(outcome.runs)
            self.batch_size = next_batch_size(
                self.batch_size, pool.options.batch, ran, cut_short=bool(outcome.left)
            )
            for run in outcome.runs:
                pool.note_result(run.result)
            # A suspect runs alone, in a transaction of its own, once the batch is committed
            # and no other thread runs a job (no claim is held open while waiting for that).
            for suspect in outcome.suspects:
                ran += self.run_suspect(suspect, claim_by_id=True)
        finally:
            pool.release_job(extra - max(0, ran - 1))
        return outcome.claimed > 0

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

    def run_suspect(self, suspect: BaseJob, *, claim_by_id: bool) -> int:
        """Once no other thread runs a job, claim again and run the claimed job alone.

        After a single claim, the claim usually returns the suspect again (it was the best
        ready job a moment ago); whatever it returns runs alone, so a death during it is
        that job's own. Returns how many jobs ran.
        """
        pool = self.pool
        queue = pool.queue
        self.log_suspect(suspect)
        with pool.gate.exclusive():
            outcome = runner.run_claim(
                queue,
                (lambda: queue.claim_by_id([suspect.id]))
                if claim_by_id
                else queue.claim,
                solo=True,
            )
        for run in outcome.runs:
            pool.note_result(run.result)
        return len(outcome.runs)

    def handle_error(self, exc: BaseException, failures: int) -> None:
        if isinstance(exc, PreparedClaimMissing):
            # Rolled back before anything was claimed, on a working connection (the
            # queue logged it once): claim again at once, unprepared.
            return
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
            # The job's own doing, and it would do it again: counted as a crash, so that
            # crash_limit ends it.
            self.pool.claims.release(self.role)
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
            # The claim this thread held, if any, rolled back with the connection: not a death.
            self.pool.claims.lose(self.role)
            logger.warning(
                "Worker thread %s lost its database connection (%s); reconnecting in %.1fs",
                self.role,
                driver.error_message(exc),
                delay,
            )
        else:
            # A bug that may come back with the same job: counted as a crash, so that
            # crash_limit ends it rather than a loop.
            self.pool.claims.release(self.role)
            logger.exception(
                "Worker thread %s: error outside a task; retrying in %.1fs",
                self.role,
                delay,
            )
        connection.close()
        events.send(self.pool.queue, signals.connection_lost, role=self.role, exc=exc)
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
