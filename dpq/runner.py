"""Running claimed jobs: one claim transaction, each task in a savepoint of it.

At-least-once: the claim, the tasks and the record of each outcome (the job deleted, or put
back with its error) are one transaction, made of ``transaction.atomic()`` blocks: the task's
writes commit with the job's removal, or not at all. What a run did is logged and signalled
only once that transaction has committed; a COMMIT that fails is the jobs' failure, recorded
with its error in a transaction of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, transaction

from dpq import driver, exceptions, signals, sql
from dpq.events import announce, log_callback_error, send
from dpq.outcomes import (
    ClaimOutcome,
    Run,
    finish_claim,
    has_start,
    put_back,
    record_failed_claim,
    starts_cleared_in_claim,
)
from dpq.starts import StartCount

if TYPE_CHECKING:
    from dpq.models import BaseJob
    from dpq.queue import Queue

logger = logging.getLogger(__name__)

# PostgreSQL's "current transaction is aborted": a statement failed and was caught without
# rolling back to a savepoint.
IN_FAILED_TRANSACTION = "25P02"


def run_claim(
    queue: Queue,
    claim: Callable[[], list[BaseJob]],
    *,
    solo: bool,
    is_suspect: Callable[[BaseJob], bool] | None = None,
    on_claimed: Callable[[list[BaseJob]], None] | None = None,
    time_limit: float | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ClaimOutcome:
    """Claim jobs with ``claim()`` and run them in one transaction (at-least-once).

    Suspects (``is_suspect``) and the jobs left when ``time_limit`` (seconds) passes or
    ``should_stop()`` are put back untouched. Inside a transaction of the caller's (a test's),
    the claim is a savepoint of it and no start is recorded on another connection.
    """
    connection = connections[queue.using]
    nested = connection.in_atomic_block
    counted = queue.has_crash_accounting and not nested
    outcome = ClaimOutcome()
    raw = None

    def note_commit() -> None:
        outcome.committed = True

    try:
        with transaction.atomic(using=queue.using):
            raw = connection.connection
            # Registered before any task's: a callback that raises after it ran raised
            # after the COMMIT, when the jobs' outcomes were already recorded.
            transaction.on_commit(note_commit, using=queue.using)
            jobs = outcome.jobs = claim()
            if not jobs:
                return outcome
            outcome.attempts = {job.id: job.attempts for job in jobs}
            if on_claimed is not None:
                on_claimed(jobs)
            runnable = []
            for job in jobs:
                suspect = is_suspect is not None and is_suspect(job)
                (outcome.suspects if suspect else runnable).append(job)
            deadline = None if time_limit is None else time.monotonic() + time_limit
            for n, job in enumerate(runnable):
                if n and (
                    (deadline is not None and time.monotonic() >= deadline)
                    or (should_stop is not None and should_stop())
                ):
                    outcome.left = runnable[n:]
                    break
                outcome.current = job
                outcome.runs.append(
                    run_job(
                        queue, job, solo=solo, counted=counted, in_batch=len(jobs) > 1
                    )
                )
                outcome.current = None
            finish_claim(
                queue, outcome.runs, [*outcome.suspects, *outcome.left], counted=counted
            )
    except Exception as exc:
        if outcome.committed:
            # A task's on_commit callback: the original package returned its error too.
            outcome.callback_error = exc
            log_callback_error(queue, outcome, exc)
        # After the claim, an error that rolled it back (at COMMIT, or a serialization
        # failure on the way) is the failure of the jobs it ran. A lost connection is not:
        # Django may have replaced it already (psycopg 3 reports the loss as a DatabaseError).
        elif (
            not isinstance(exc, DatabaseError)
            or not outcome.jobs
            or nested
            or not _usable(connection, raw)
        ):
            raise
        else:
            record_failed_claim(queue, outcome, exc)
    if outcome.committed:
        late = [run.job.id for run in outcome.runs if has_start(run, counted)]
        if late and not starts_cleared_in_claim(queue):
            queue.start_recorder.clear(late)
    for run in outcome.runs:
        announce(queue, run)
    return outcome


def run_job(
    queue: Queue, job: BaseJob, *, solo: bool, counted: bool, in_batch: bool = False
) -> Run:
    """Run a claimed job's task in a savepoint of the claim transaction; record a failure.

    Only solo starts are written before the task runs (crash accounting): a death beside
    other jobs is found by the next claim instead (see dpq.sql.FIND_DEAD_CLAIMS).
    """
    refusal = queue.refusal(job)
    if refusal is not None:
        run = Run(job, exc=refusal, error_text=str(refusal))
        put_back(queue, run, give_up=True)
        return run
    recorded = counted and solo
    if recorded:
        queue.start_recorder.record(
            [StartCount(job.id, 1, 1, job.claim_xid)], worker=queue.worker_name
        )
    send(queue, signals.job_started, job=job)
    started = time.monotonic()
    try:
        with transaction.atomic(using=queue.using):
            retval = queue.run_job(job)
            end_task(queue, in_batch=in_batch)
    except Exception as exc:  # the task's own code: its failure is the job's
        run = Run(job, exc=exc, elapsed=time.monotonic() - started)
        put_back(queue, run)
        return run
    return Run(
        job,
        retval=retval,
        elapsed=time.monotonic() - started,
        recorded_start=recorded,
    )


def end_task(queue: Queue, *, in_batch: bool) -> None:
    """Refuse a transaction the task left unusable; fail the task on deferred violations.

    Checked for every task, whatever cursor it used: a violation found at COMMIT instead
    would roll the job's row back into the table, free for another thread's claim before
    its failure is recorded.
    """
    if transaction.get_rollback(using=queue.using):
        raise exceptions.DpqError(
            "the task caught a database error without rolling back to a savepoint, "
            "leaving the transaction unusable; wrap the failing statement in "
            "transaction.atomic() so that only it is rolled back"
        )
    statement = (
        sql.CHECK_DEFERRED_CONSTRAINTS_AND_RESTORE
        if in_batch
        else sql.CHECK_DEFERRED_CONSTRAINTS
    )
    try:
        sql.execute(queue.using, statement)
    except DatabaseError as exc:
        if driver.sqlstate(exc) == IN_FAILED_TRANSACTION:
            raise exceptions.DpqError(
                "the task caught a database error without rolling back to a savepoint "
                "(on a cursor Django does not watch), leaving the transaction unusable; "
                "wrap the failing statement in transaction.atomic()"
            ) from exc
        raise


def run_committed_claim(queue: Queue, job: BaseJob) -> Run:
    """Run a job whose claim is committed (at-most-once): a failure is final."""
    refusal = queue.refusal(job)
    if refusal is not None:
        run = Run(job, exc=refusal, error_text=str(refusal))
        put_back(queue, run, give_up=True)
    else:
        send(queue, signals.job_started, job=job)
        started = time.monotonic()
        try:
            with transaction.atomic(using=queue.using):
                retval = queue.run_job(job)
            run = Run(job, retval=retval, elapsed=time.monotonic() - started)
        except Exception as exc:  # the task's own code: its failure is the job's
            run = Run(job, exc=exc, elapsed=time.monotonic() - started)
            put_back(queue, run, give_up=True)
    announce(queue, run)
    return run


def _usable(connection: Any, raw: Any) -> bool:
    """Whether ``connection`` still holds the driver connection ``raw``, and it works."""
    try:
        return (
            raw is not None and connection.connection is raw and connection.is_usable()
        )
    except DatabaseError:
        return False
