"""Crash accounting: job starts committed on a connection of their own.

A start is written and committed before the task runs, on a connection that is not the
claim's, so it survives the claim's rollback when the process dies. The claim transaction
deletes it when the run ends; a start record that outlives its run means the worker died
while running the job (see Queue.process_job and the worker's solo rule).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import psycopg2
from django.db import connections

from dpq import sql

logger = logging.getLogger(__name__)


@dataclass
class _PendingStart:
    job_ids: list[int]
    solo: bool
    done: bool = False
    error: BaseException | None = None


class StartRecorder:
    """Commits job starts on a connection of its own (crash accounting).

    One per process, shared by the worker threads: the process needs one extra connection,
    not one per thread. Threads that arrive while a start is being written do not each wait
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

    def record(self, job_ids: list[int], *, solo: bool, worker: str) -> None:
        """Count a start of each job; committed before this returns."""
        mine = _PendingStart(job_ids, solo)
        with self._pending_lock:
            self._pending.append(mine)
        with self._lock:
            if not mine.done:
                with self._pending_lock:
                    waiting, self._pending = self._pending, []
                self._write(waiting, worker[:63])
        if mine.error is not None:
            raise mine.error

    def _write(self, waiting: list[_PendingStart], worker: str) -> None:
        """Write the waiting starts, solo and shared ones apart (with the lock held)."""
        statement = sql.render(sql.RECORD_JOB_STARTS)
        for solo in (False, True):
            group = [p for p in waiting if p.solo is solo]
            if not group:
                continue
            ids = [job_id for p in group for job_id in p.job_ids]
            try:
                self._execute(statement, {"ids": ids, "solo": solo, "worker": worker})
            except psycopg2.Error as exc:
                for pending in group:
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
            except psycopg2.errors.LockNotAvailable:
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
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.close_locked()
                if attempt == 2:
                    raise

    def close_locked(self) -> None:
        if self._connection is not None and self._pid == os.getpid():
            try:
                self._connection.close()
            except psycopg2.Error:
                logger.debug(
                    "Closing the crash-accounting connection failed", exc_info=True
                )
        self._connection = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()
