"""Running claimed jobs: one claim transaction, each task in a savepoint of it.

At-least-once: the claim, the tasks and the record of each outcome (the job deleted, or put
back with its error) are one transaction, made of ``transaction.atomic()`` blocks: the task's
writes commit with the job's removal, or not at all. What a run did is logged and signalled
only once that transaction has committed; a COMMIT that fails is the jobs' failure, recorded
with its error in a transaction of its own.
"""

from __future__ import annotations

import datetime
import logging
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, transaction
from django.dispatch import Signal
from django.utils import timezone

from dpq import driver, exceptions, signals, sql
from dpq.retry import decide
from dpq.starts import StartCount

if TYPE_CHECKING:
    from dpq.models import BaseJob
    from dpq.queue import Queue, RunResult

logger = logging.getLogger(__name__)

# Per driver connection: whether its claims clear start records themselves.
_CLEARS_STARTS_IN_CLAIM: weakref.WeakKeyDictionary[Any, bool] = (
    weakref.WeakKeyDictionary()
)

# PostgreSQL's "current transaction is aborted": a statement failed and was caught without
# rolling back to a savepoint.
IN_FAILED_TRANSACTION = "25P02"


@dataclass
class Run:
    """One run of a job: its task's return value or exception, and what was recorded."""

    job: BaseJob
    retval: Any = None
    exc: BaseException | None = None
    elapsed: float = 0.0
    # For a failure: whether the job is kept as failed, else when it is tried again.
    give_up: bool = False
    retry_in: float = 0.0
    # The failure's text when it is not a traceback (a refusal to run the job at all).
    error_text: str | None = None
    # Whether a start was recorded for this run (crash accounting), to forget when it ends.
    recorded_start: bool = False
    # False when its outcome could not be recorded (another worker took the job first).
    recorded: bool = True

    @property
    def result(self) -> RunResult:
        return self.job, self.retval, self.exc


@dataclass
class ClaimOutcome:
    """What one claim transaction ran, and the jobs it put back untouched."""

    runs: list[Run] = field(default_factory=list)
    # Put back to run alone (a job that was running when a worker died).
    suspects: list[BaseJob] = field(default_factory=list)
    # Put back because the batch's time ran out or the worker is stopping.
    left: list[BaseJob] = field(default_factory=list)
    # Every job the claim took, and the one whose run was under way (if any).
    jobs: list[BaseJob] = field(default_factory=list)
    current: BaseJob | None = None
    # Each job's attempts as claimed (a failed run counts one more on the job).
    attempts: dict[int, int] = field(default_factory=dict)
    # Set by the claim's first on_commit callback; what a later callback raised after COMMIT.
    committed: bool = False
    callback_error: Exception | None = None

    @property
    def claimed(self) -> int:
        return len(self.jobs)


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
        late = [run.job.id for run in outcome.runs if _has_start(run, counted)]
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
    sent = _StatementCount()
    try:
        with transaction.atomic(using=queue.using):
            with connections[queue.using].execute_wrapper(sent):
                retval = queue.run_job(job)
            end_task(queue, in_batch=in_batch, sent=sent.count > 0)
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


class _StatementCount:
    """An execute wrapper that counts the statements a task sends through Django's cursors."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: Any,
    ) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def end_task(queue: Queue, *, in_batch: bool, sent: bool = True) -> None:
    """Refuse a transaction the task left unusable; fail the task on deferred violations.

    A lone job whose task sent nothing through Django's cursors skips the constraint check:
    a violation left by a driver cursor then fails at COMMIT, which is recorded as the job's
    failure just the same. In a batch that would fail every job of it, so it always checks.
    """
    if transaction.get_rollback(using=queue.using):
        raise exceptions.DpqError(
            "the task caught a database error without rolling back to a savepoint, "
            "leaving the transaction unusable; wrap the failing statement in "
            "transaction.atomic() so that only it is rolled back"
        )
    if not sent and not in_batch:
        return
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


def put_back(queue: Queue, run: Run, *, give_up: bool = False) -> None:
    """Write a failed run back: the job inserted again with one more attempt and its error."""
    params = _failure_params(queue, run, give_up=give_up)
    params["clear_start"] = starts_cleared_in_claim(queue)
    sql.execute(queue.using, sql.PUT_BACK_JOB, params, job_table=queue.job_table)


def _failure_params(queue: Queue, run: Run, *, give_up: bool) -> dict[str, Any]:
    """Count the failed attempt on ``run.job`` and decide on a retry; the statement's params."""
    job = run.job
    job.attempts += 1
    job.last_error = run.error_text or "".join(traceback.format_exception(run.exc))
    decision = decide(queue.retry_policy_for(job.task), job.attempts)
    run.give_up = give_up or decision.give_up
    run.retry_in = decision.retry_in
    return {
        "id": job.id,
        "created_at": job.created_at,
        "execute_at": job.execute_at,
        "give_up": run.give_up,
        "retry_in": decision.retry_in,
        "priority": job.priority,
        "task": job.task,
        "args": job.claimed_args,
        "queue": job.queue,
        "attempts": job.attempts,
        "last_error": job.last_error,
    }


def finish_claim(
    queue: Queue, runs: Sequence[Run], left: Sequence[BaseJob], *, counted: bool
) -> None:
    """The claim's last statements: put back the jobs not run, forget finished starts."""
    if left:
        sql.execute(
            queue.using,
            sql.PUT_BACK_JOBS_UNCHANGED,
            {
                "ids": [job.id for job in left],
                "created_ats": [job.created_at for job in left],
                "execute_ats": [job.execute_at for job in left],
                "priorities": [job.priority for job in left],
                "tasks": [job.task for job in left],
                "args": [job.claimed_args for job in left],
                "queues": [job.queue for job in left],
                "attempts": [job.attempts for job in left],
                "last_errors": [job.last_error for job in left],
                "failed_ats": [job.failed_at for job in left],
            },
            job_table=queue.job_table,
        )
    # A failure's put-back forgot its start already; a success with a start record does here.
    started = [
        run.job.id for run in runs if run.exc is None and _has_start(run, counted)
    ]
    if started and starts_cleared_in_claim(queue):
        sql.execute(queue.using, sql.CLEAR_JOB_STARTS, {"ids": started})


def _has_start(run: Run, counted: bool) -> bool:
    return run.recorded_start or (counted and run.job.starts > 0)


def starts_cleared_in_claim(queue: Queue) -> bool:
    """Whether the claim transaction can forget its jobs' start records itself.

    Not at REPEATABLE READ or SERIALIZABLE: the claim's snapshot predates the records the
    crash-accounting connection commits during it. They are cleared after the commit instead.
    Asked once per connection, inside the claim transaction.
    """
    driver = connections[queue.using].connection
    known = _CLEARS_STARTS_IN_CLAIM.get(driver)
    if known is None:
        level = sql.fetch_one(queue.using, sql.TRANSACTION_ISOLATION)[0]
        known = level in ("read committed", "read uncommitted")
        _CLEARS_STARTS_IN_CLAIM[driver] = known
    return known


def record_failed_claim(
    queue: Queue, outcome: ClaimOutcome, error: DatabaseError
) -> None:
    """A claim rolled back after its jobs ran (a failed COMMIT): record each run's failure.

    A run that had succeeded, and the one under way, failed with ``error``; one that had
    failed keeps its own error. Every job of the claim is locked again, so that the
    rolled-back claim is not taken for a worker's death; those not run stay as they were.
    """
    runs = list(outcome.runs)
    if outcome.current is not None:
        runs.append(Run(outcome.current))
    queue.logger.warning(
        "A claim of %s job(s) was rolled back after they ran (%s); recording it as "
        "their failure",
        len(outcome.jobs),
        _one_line(error),
    )
    with transaction.atomic(using=queue.using):
        locked = {
            row[0]
            for row in sql.fetch_all(
                queue.using,
                sql.LOCK_JOBS_AFTER_FAILED_COMMIT,
                {"ids": [job.id for job in outcome.jobs]},
                job_table=queue.job_table,
            )
        }
        for run in runs:
            if run.exc is None:
                run.exc, run.retval = error, None
            # A put-back that was rolled back too: the attempt is counted again below.
            run.job.attempts = outcome.attempts[run.job.id]
            if run.job.id not in locked:
                queue.logger.warning(
                    "Job %s (%s) was claimed by another worker before its failure could be "
                    "recorded; it runs again",
                    run.job.id,
                    run.job.task,
                )
                run.recorded = False
                continue
            params = _failure_params(queue, run, give_up=run.error_text is not None)
            sql.execute(
                queue.using, sql.RECORD_JOB_FAILURE, params, job_table=queue.job_table
            )


def log_callback_error(queue: Queue, outcome: ClaimOutcome, error: Exception) -> None:
    """Log a transaction.on_commit callback that raised after the claim committed."""
    ids = ", ".join(str(job.id) for job in outcome.jobs)
    queue.logger.error(
        "A transaction.on_commit callback raised after the claim of job(s) %s committed: "
        "their outcomes stand, and Django skipped the callbacks registered after it: %s",
        ids,
        _one_line(error),
        exc_info=error,
        extra={"job_ids": [job.id for job in outcome.jobs], "queue": queue.name},
    )


def announce(queue: Queue, run: Run) -> None:
    """Log a recorded run and send its signal (after its transaction committed)."""
    job = run.job
    if not run.recorded:
        return
    extra = {"job_id": job.id, "task": job.task, "queue": queue.name}
    if run.exc is None:
        if queue.logger.isEnabledFor(logging.INFO):
            queue.logger.info(
                "Job %s (%s) succeeded in %.3fs",
                job.id,
                job.task,
                run.elapsed,
                extra={**extra, "duration": run.elapsed},
            )
        send(
            queue,
            signals.job_succeeded,
            job=job,
            retval=run.retval,
            duration=run.elapsed,
        )
        return
    extra["attempts"] = job.attempts
    if run.give_up:
        job.failed_at = timezone.now()
        queue.logger.error(
            "Job %s (%s) failed after %s attempt(s) and is kept as failed: %s",
            job.id,
            job.task,
            job.attempts,
            _one_line(run.exc),
            exc_info=run.exc if run.error_text is None else None,
            extra=extra,
        )
    else:
        job.execute_at = timezone.now() + datetime.timedelta(seconds=run.retry_in)
        queue.logger.warning(
            "Job %s (%s) failed (attempt %s of %s); retrying in %.1fs: %s",
            job.id,
            job.task,
            job.attempts,
            queue.retry_policy_for(job.task).max_attempts,
            run.retry_in,
            _one_line(run.exc),
            exc_info=run.exc,
            extra=extra,
        )
    send(queue, signals.job_failed, job=job, exc=run.exc, will_retry=not run.give_up)


def send(queue: Queue, signal: Signal, **kwargs: Any) -> None:
    """Send a dpq signal; a receiver that raises is logged and changes nothing else.

    Inside a transaction the receivers run in a savepoint, so that a statement of theirs
    that fails is rolled back alone instead of breaking the job's transaction.
    """
    sender = type(queue)
    if not signal.has_listeners(sender):
        return
    responses: list[tuple[Any, Any]] = []
    try:
        if connections[queue.using].in_atomic_block:
            with transaction.atomic(using=queue.using):
                responses = signal.send_robust(sender=sender, queue=queue, **kwargs)
        else:
            responses = signal.send_robust(sender=sender, queue=queue, **kwargs)
    except (
        DatabaseError
    ) as exc:  # a receiver's failed statement, met at the savepoint's end
        responses = [*responses, (None, exc)]
    for receiver, response in responses:
        if isinstance(response, BaseException):
            logger.error(
                "A receiver of a dpq signal raised (%r); the job's outcome stands: %s",
                receiver,
                _one_line(response),
                exc_info=response,
                extra={"job_id": getattr(kwargs.get("job"), "id", None)},
            )


def _usable(connection: Any, raw: Any) -> bool:
    """Whether ``connection`` still holds the driver connection ``raw``, and it works."""
    try:
        return (
            raw is not None and connection.connection is raw and connection.is_usable()
        )
    except DatabaseError:
        return False


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__
