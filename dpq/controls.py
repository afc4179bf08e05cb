"""Controls an operator uses on single jobs: edit a job and requeue it, run a job again.

The dashboard's buttons call these; so can code (``from dpq import controls``). Each is one
transaction that never waits for a worker: a running job's row lock is skipped, not waited
on, and reported as ``JobRunningError``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils.module_loading import import_string

from dpq import exceptions, sql
from dpq.models import PRIORITY_MAX, PRIORITY_MIN, JobState, JSONValue

# The args of an edit: a value, or a function of the stored args (called under the row lock)
# that returns the new ones, or raises JobNotEditableError to change nothing.
ArgsEdit = JSONValue | Callable[[JSONValue], JSONValue]


@dataclass(frozen=True)
class EditResult:
    """What an edit found and did: the job's state before, its queue, whether it was woken."""

    job_id: int
    previous_state: JobState
    queue: str
    notified: bool


@dataclass(frozen=True)
class RunAgainResult:
    """The copy a run-again enqueued, and whether its queue's workers were notified."""

    job_id: int
    queue: str
    notified: bool


def validate_priority(priority: object) -> int:
    """The priority as an int, or JobNotEditableError saying the allowed range."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise exceptions.JobNotEditableError(
            f"priority must be a whole number, got {priority!r}"
        )
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise exceptions.JobNotEditableError(
            f"priority {priority} is out of range: use {PRIORITY_MIN} to {PRIORITY_MAX}"
        )
    return priority


def queue_channel(queue_name: str, *, using: str = DEFAULT_DB_ALIAS) -> str | None:
    """The notify channel the workers of ``queue_name`` listen on, when dpq knows it.

    Known from the ``DPQ_QUEUE`` queue when it is that queue, else from a schedule the
    queue declared (the schedules table keeps its channel); None otherwise.
    """
    path = getattr(settings, "DPQ_QUEUE", None)
    if isinstance(path, str):
        try:
            queue = import_string(path)
        except ImportError:
            queue = None
        if getattr(queue, "name", None) == queue_name and getattr(
            queue, "notify_channel", None
        ):
            return queue.notify_channel
    row = sql.fetch_one(using, sql.SCHEDULED_QUEUE_CHANNEL, {"queue": queue_name})
    return row[0] if row else None


def notify_queue(queue_name: str, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    """NOTIFY the queue's channel when known (sent at commit); whether it was sent."""
    channel = queue_channel(queue_name, using=using)
    if channel:
        sql.execute(using, sql.NOTIFY, {"channel": channel})
    return bool(channel)


def edit_job(
    job_id: int,
    *,
    args: ArgsEdit,
    priority: int,
    execute_at: datetime.datetime | None = None,
    reset_attempts: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    job_table: str = "dpq_job",
) -> EditResult:
    """Change a failed or delayed job's args, priority and run time, and requeue it.

    One transaction: the row is locked with SKIP LOCKED (a running job raises
    JobRunningError at once), ``failed_at`` is cleared and ``execute_at`` set (None: now).
    A queued job raises JobNotEditableError: a worker may claim it any moment. Nothing is
    written when anything is refused. Workers are notified when the channel is known.
    """
    priority = validate_priority(priority)
    with transaction.atomic(using=using):
        row = sql.fetch_one(
            using, sql.LOCK_JOB_FOR_EDIT, {"id": job_id}, job_table=job_table
        )
        if row is None:
            (exists,) = sql.fetch_one(
                using, sql.JOB_EXISTS, {"id": job_id}, job_table=job_table
            )
            if exists:
                raise exceptions.JobRunningError(
                    f"job {job_id} is running (a worker holds its row lock): it cannot be "
                    "edited until its run ends"
                )
            raise exceptions.JobNotFoundError(
                f"job {job_id} does not exist: it ran and succeeded, or it was deleted"
            )
        stored, _, _, failed_at, queue_name, is_delayed = row
        if isinstance(stored, str):
            stored = json.loads(stored)
        if failed_at is not None:
            previous = JobState.FAILED
        elif is_delayed:
            previous = JobState.DELAYED
        else:
            raise exceptions.JobNotEditableError(
                f"job {job_id} is queued: a worker may start it any moment, so it cannot "
                "be edited; only failed and delayed jobs can"
            )
        new_args = args(stored) if callable(args) else args
        try:
            text = json.dumps(new_args)
        except (TypeError, ValueError) as exc:
            raise exceptions.JobNotEditableError(f"args must be JSON: {exc}") from exc
        sql.execute(
            using,
            sql.EDIT_JOB,
            {
                "id": job_id,
                "args": text,
                "priority": priority,
                "execute_at": execute_at,
                "reset_attempts": reset_attempts,
            },
            job_table=job_table,
        )
        notified = notify_queue(queue_name, using=using)
    return EditResult(job_id, previous, queue_name, notified)


def run_again(
    job_id: int, *, using: str = DEFAULT_DB_ALIAS, job_table: str = "dpq_job"
) -> RunAgainResult:
    """Enqueue a copy of any job (same task, args, priority and queue), ready now.

    The original is read without a lock, so a running job is copied at once; it stays as it
    is. Raises JobNotFoundError when the job is gone. Workers are notified when the channel
    is known.
    """
    with transaction.atomic(using=using):
        row = sql.fetch_one(
            using, sql.RUN_JOB_AGAIN, {"id": job_id}, job_table=job_table
        )
        if row is None:
            raise exceptions.JobNotFoundError(
                f"job {job_id} does not exist: it ran and succeeded, or it was deleted"
            )
        new_id, queue_name = row
        notified = notify_queue(queue_name, using=using)
    return RunAgainResult(new_id, queue_name, notified)
