"""What a run leaves in the table: a failure put back, a claim finished, a failed claim.

Everything here runs inside the claim's transaction, except record_failed_claim(), which
records the failures of a claim that rolled back in a transaction of its own.
"""

from __future__ import annotations

import traceback
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, transaction

from dpq import sql
from dpq.events import one_line
from dpq.retry import decide

if TYPE_CHECKING:
    from dpq.models import BaseJob
    from dpq.queue import Queue, RunResult

# Per driver connection: whether its claims clear start records themselves.
_CLEARS_STARTS_IN_CLAIM: weakref.WeakKeyDictionary[Any, bool] = (
    weakref.WeakKeyDictionary()
)


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


def put_back(queue: Queue, run: Run, *, give_up: bool = False) -> None:
    """Write a failed run back: the job inserted again with one more attempt and its error."""
    params = _failure_params(queue, run, give_up=give_up)
    params["clear_start"] = starts_cleared_in_claim(queue)
    sql.execute(queue.using, sql.PUT_BACK_JOB, params, job_table=queue.job_table)
    queue.failure_recorded(run)


def _failure_params(queue: Queue, run: Run, *, give_up: bool) -> dict[str, Any]:
    """Count the failed attempt on ``run.job`` and decide on a retry; the statement's params."""
    job = run.job
    job.attempts += 1
    job.last_error = run.error_text or "".join(traceback.format_exception(run.exc))
    decision = decide(queue.retry_policy_for(job.task), job.attempts)
    run.give_up = give_up or decision.give_up or queue.gives_up_on(run.exc)
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
        run.job.id for run in runs if run.exc is None and has_start(run, counted)
    ]
    if started and starts_cleared_in_claim(queue):
        sql.execute(queue.using, sql.CLEAR_JOB_STARTS, {"ids": started})


def has_start(run: Run, counted: bool) -> bool:
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
        one_line(error),
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
            queue.failure_recorded(run)
