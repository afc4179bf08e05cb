"""The job store: claiming jobs, and what a claim learns of the claims before it.

A claim deletes the jobs it takes and keeps their rows locked until its transaction ends
(see dpq.sql). Here too: the prepared claim of a worker's connection, and crash accounting at
claim time (a claim that finds a job's earlier claim dead counts the death).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from typing import Any

from django.db import DatabaseError, connections

from dpq import driver, events, signals, sql
from dpq.models import BaseJob
from dpq.starts import StartCount, StartRecorder

# The attribute of a thread's DatabaseWrapper naming the claim prepared on its connection:
# (the driver connection it was prepared on, the EXECUTE statement).
_PREPARED_CLAIM = "dpq_prepared_claim"
# SQLSTATEs of a prepared statement missing from, or already on, the connection.
INVALID_SQL_STATEMENT_NAME = "26000"
DUPLICATE_PREPARED_STATEMENT = "42P05"
# Read once: worker_name is built for every job a worker starts.
HOSTNAME = socket.gethostname()


class PreparedClaimMissing(DatabaseError):
    """The prepared claim was not on the server connection that ran it (a pooler's).

    Nothing was claimed: the caller rolls back and claims again, which from now on is
    unprepared in every thread of the process.
    """


class JobStore:
    """The claim side of a Queue (its base class): claim, claim by id, give back.

    Reads the queue's ``name``, ``using``, ``job_table``, ``logger`` and
    ``has_crash_accounting``, set by Queue.
    """

    name: str
    using: str
    logger: logging.Logger
    _start_recorder: StartRecorder | None
    _prepare_claims: bool

    def claim(
        self, *, limit: int = 1, exclude_ids: Iterable[int] = ()
    ) -> list[BaseJob]:
        """Claim up to ``limit`` ready jobs of this queue (deleted, locked until commit)."""
        statement = sql.CLAIM_JOB if limit == 1 else sql.CLAIM_JOBS
        connection = connections[self.using]
        prepared = getattr(connection, _PREPARED_CLAIM, None)
        # _prepare_claims is the process's: once one thread found the prepared claim
        # missing, no thread executes its own any more.
        if (
            limit == 1
            and self._prepare_claims
            and prepared is not None
            and prepared[0] is connection.connection
        ):
            statement = prepared[1]
        params = {"queue": self.name, "exclude_ids": list(exclude_ids), "limit": limit}
        try:
            rows = sql.fetch_all(
                self.using, statement, params, job_table=self.job_table
            )
        except DatabaseError as exc:
            if driver.sqlstate(exc) == INVALID_SQL_STATEMENT_NAME:
                self._lost_prepared_claim(connection)
                raise PreparedClaimMissing(str(exc)) from exc
            raise
        jobs = self._claimed(rows)
        if len(jobs) > 1:
            jobs.sort(key=lambda job: (-job.priority, job.execute_at, job.id))
        if jobs and self.logger.isEnabledFor(logging.DEBUG):
            for job in jobs:
                self.logger.debug(
                    "Claimed job %s (%s)", job.id, job.task, extra=self._log_extra(job)
                )
        return jobs

    def claim_by_id(self, ids: list[int]) -> list[BaseJob]:
        """Claim the given jobs if they are still ready and nobody holds them."""
        rows = sql.fetch_all(
            self.using, sql.CLAIM_JOBS_BY_ID, {"ids": ids}, job_table=self.job_table
        )
        return self._claimed(rows)

    def prepare_claim(self) -> None:
        """Prepare the one-job claim on this thread's connection; claim() then executes it.

        For worker threads, which claim thousands of times on one connection: planning the
        claim is most of its cost to PostgreSQL. A session-level prepared statement does not
        survive a pooler that hands each transaction another server connection (PgBouncer in
        transaction mode); when it goes missing, the queue stops preparing its claim.
        """
        connection = connections[self.using]
        if not self._prepare_claims or driver.binds_server_side(connection):
            return
        connection.ensure_connection()
        prepared = getattr(connection, _PREPARED_CLAIM, None)
        if prepared is not None and prepared[0] is connection.connection:
            return
        prepare, execute = sql.prepared_claim(self.job_table)
        try:
            with connection.cursor() as cursor:
                cursor.execute(prepare)
        except DatabaseError as exc:
            # Already there on a fresh connection: a pooler shares server sessions.
            if driver.sqlstate(exc) != DUPLICATE_PREPARED_STATEMENT:
                raise
            self._lost_prepared_claim(connection)
            return
        setattr(connection, _PREPARED_CLAIM, (connection.connection, execute))

    def _lost_prepared_claim(self, connection: Any) -> None:
        setattr(connection, _PREPARED_CLAIM, None)
        if self._prepare_claims:
            self._prepare_claims = False
            self.logger.warning(
                "The prepared claim of queue %r went missing from its connection, or was "
                "there before it was prepared (a connection pooler in transaction mode?): "
                "this process claims without preparing from now on",
                self.name,
            )

    def _claimed(self, rows: list[tuple]) -> list[BaseJob]:
        """Build the claimed jobs, and count the deaths the claim found before any runs.

        A job whose earlier claim rolled back with its worker gets one more start, written
        now: this claim's lock replaces the evidence, and this run may die too. A job that
        another transaction held is given its start counts as they are now (that holder
        may have written them after the claim's snapshot).
        """
        jobs = [self.job_model.from_claim_row(row) for row in rows]
        held = [job for job in jobs if job.held_by]
        if not held or not self.has_crash_accounting:
            return jobs
        found = {
            job_id: (dead, starts, solo_starts)
            for job_id, dead, starts, solo_starts in sql.fetch_all(
                self.using,
                sql.FIND_DEAD_CLAIMS,
                {
                    "ids": [job.id for job in held],
                    "held_by": [job.held_by for job in held],
                },
            )
        }
        dead = {}
        for job in held:
            dead[job.id], job.starts, job.solo_starts = found[job.id]
        deaths = [job for job in held if dead[job.id] is not None]
        if deaths:
            self.start_recorder.record(
                [StartCount(job.id, 1, 0, dead[job.id]) for job in deaths],
                worker=self.worker_name,
            )
            for job in deaths:
                job.starts += 1
        # Started before and never finished: given back by a worker that died (a death
        # found now, or a solo start recorded before it), or lost its connection.
        for job in held:
            if job.starts > 0:
                events.send(self, signals.job_crashed, job=job)
        return jobs

    def give_back(self, job: BaseJob) -> None:
        """Account for a claim of ``job`` that the caller is about to roll back on purpose.

        The rolled-back claim looks like one that died with its worker; its start record now
        names it, so the next claim does not count a death.
        """
        # Only a job with starts is given back (a suspect), so its start record exists.
        if self.has_crash_accounting and job.starts > 0 and job.claim_xid is not None:
            self.start_recorder.record(
                [StartCount(job.id, 0, 0, job.claim_xid)], worker=self.worker_name
            )

    def _log_extra(self, job: BaseJob) -> dict[str, Any]:
        return {"job_id": job.id, "task": job.task, "queue": self.name}

    # --- Crash accounting -----------------------------------------------------------------

    @property
    def start_recorder(self) -> StartRecorder:
        with self._recorder_lock:
            if self._start_recorder is None:
                name = f"dpq:{self.name}:{HOSTNAME}:{os.getpid()}:starts"
                self._start_recorder = StartRecorder(self.using, name)
            return self._start_recorder

    def close(self) -> None:
        """Close the crash-accounting connection (the worker does this on shutdown)."""
        if self._start_recorder is not None:
            self._start_recorder.close()
