"""Crash accounting: job starts committed on a connection of their own.

A start record is written and committed on a connection that is not the claim's, so it
survives the claim's rollback when the process dies; the claim transaction deletes it when the
run ends. Two kinds of start are written: a solo start, before a task runs alone, and a death
that a claim found (an earlier claim of the job that rolled back with its worker: see
dpq.sql.FIND_DEAD_CLAIMS). A start beside other jobs is not written at all; if the worker dies,
the next claim finds out. See Queue.process_job and the worker's solo rule.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction

from dpq import driver, sql

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartCount:
    """Starts to add to one job's record, and the claim transaction it now accounts for."""

    job_id: int
    starts: int
    solo_starts: int
    claim_xid: int | None


@dataclass
class _PendingStart:
    counts: list[StartCount]
    done: bool = False
    error: BaseException | None = None


class StartRecorder:
    """Commits job starts on a connection of its own (crash accounting).

    One per process, shared by the worker threads: the process needs one extra connection,
    not one per thread. The connection stays open only in a worker (``keep_open``);
    elsewhere (``run_once()`` in a script or a test) it is closed after each write, so that
    no connection Django does not know about outlives the call. Threads that arrive while a start is being written do not each wait
    for a round trip of their own: the next thread to get the connection writes every start
    waiting by then in one statement (synchronous_commit is off, so it is cheap).
    """

    def __init__(self, using: str, application_name: str) -> None:
        self.using = using
        self.application_name = application_name
        self._lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[_PendingStart] = []
        self._connection: Any = None
        self._pid = os.getpid()
        self.keep_open = False

    def _connect(self) -> Any:
        wrapper = connections[self.using]
        raw = wrapper.get_new_connection(wrapper.get_connection_params())
        raw.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute(sql.SET_ASYNCHRONOUS_COMMIT)
            cursor.execute(sql.SET_START_LOCK_TIMEOUT)
            cursor.execute(
                sql.SET_APPLICATION_NAME, {"name": self.application_name[:63]}
            )
        return raw

    def record(self, counts: list[StartCount], *, worker: str) -> None:
        """Add the starts to the jobs' records; committed before this returns."""
        mine = _PendingStart(counts)
        with self._pending_lock:
            self._pending.append(mine)
        with self._lock:
            if not mine.done:
                with self._pending_lock:
                    waiting, self._pending = self._pending, []
                self._write(waiting, worker[:63])
                if not self.keep_open:
                    self.close_locked()
        if mine.error is not None:
            raise mine.error

    def clear(self, job_ids: list[int]) -> None:
        """Forget the finished starts of ``job_ids`` (see sql.CLEAR_FINISHED_JOB_STARTS)."""
        with self._lock:
            self._execute(sql.render(sql.CLEAR_FINISHED_JOB_STARTS), {"ids": job_ids})
            if not self.keep_open:
                self.close_locked()

    def _write(self, waiting: list[_PendingStart], worker: str) -> None:
        """Write every waiting count in one statement (with the lock held)."""
        counts = [count for pending in waiting for count in pending.counts]
        params = {
            "ids": [c.job_id for c in counts],
            "starts": [c.starts for c in counts],
            "solo": [c.solo_starts for c in counts],
            "claim_xids": [c.claim_xid for c in counts],
            "worker": worker,
        }
        try:
            self._execute(sql.render(sql.RECORD_JOB_STARTS), params)
        except driver.Error as exc:
            for pending in waiting:
                pending.error = exc
        for pending in waiting:
            pending.done = True

    def _execute(self, statement: str, params: dict[str, Any]) -> None:
        if self._pid != os.getpid():
            # A forked child must not share its parent's socket.
            self._connection, self._pid = None, os.getpid()
        for attempt in (1, 2):
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = self._connect()
                with self._connection.cursor() as cursor:
                    cursor.execute(statement, params)
                return
            except driver.errors.LockNotAvailable:
                # The caller's own open transaction holds the start record (see
                # sql.SET_START_LOCK_TIMEOUT): run the job, uncounted, rather than hang.
                logger.warning(
                    "Could not record the start of job(s) %s: an open transaction holds "
                    "their start record (the same job run twice inside one transaction?); "
                    "running without crash accounting for this start",
                    params["ids"],
                    extra={"job_ids": params["ids"]},
                )
                return
            except (driver.OperationalError, driver.InterfaceError):
                self.close_locked()
                if attempt == 2:
                    raise

    def close_locked(self) -> None:
        if self._connection is not None and self._pid == os.getpid():
            try:
                self._connection.close()
            except driver.Error:
                logger.debug(
                    "Closing the crash-accounting connection failed", exc_info=True
                )
        self._connection = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()


class ClaimsInFlight:
    """The claims this process's worker threads hold open, by thread.

    A claim that rolls back with a lost connection looks like one that died with its worker.
    The worker knows better: a thread that reconnects locks again the jobs of every claim of
    this process that the server rolled back (its own, and those of threads that have not
    noticed yet), so that none of them is counted as a death.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, list[tuple[int, int]]] = {}
        self._lost: list[tuple[int, int]] = []

    def hold(self, holder: str, jobs: list[Any]) -> None:
        claims = [(job.id, job.claim_xid) for job in jobs if job.claim_xid is not None]
        with self._lock:
            self._open[holder] = claims

    def release(self, holder: str) -> None:
        with self._lock:
            self._open.pop(holder, None)

    def lose(self, holder: str) -> None:
        """The holder's claim rolled back (its connection was lost, or an error ended it)."""
        with self._lock:
            self._lost.extend(self._open.pop(holder, []))

    def held_by_others(self, holder: str) -> list[int]:
        """Ids of the jobs of every claim but ``holder``'s, lost ones included.

        A thread's claim leaves them out: a claim that rolled back (its COMMIT failed) has
        its jobs back in the table until its failure is recorded, and they are not free.
        """
        with self._lock:
            return [
                job_id
                for claimant, claims in self._open.items()
                if claimant != holder
                for job_id, _ in claims
            ] + [job_id for job_id, _ in self._lost]

    def all(self) -> list[tuple[int, int]]:
        with self._lock:
            return [*self._lost, *(c for claims in self._open.values() for c in claims)]

    def relock_lost(self, using: str, job_table: str) -> list[int]:
        """Lock the rolled-back claims' jobs in a transaction that commits; return their ids."""
        claims = self.all()
        if not claims:
            return []
        with transaction.atomic(using=using):
            rows = sql.fetch_all(
                using,
                sql.RELOCK_LOST_CLAIMS,
                {"ids": [c[0] for c in claims], "claim_xids": [c[1] for c in claims]},
                job_table=job_table,
            )
        with self._lock:
            self._lost = []
        return [row[0] for row in rows]
