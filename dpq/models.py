from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from dpq.querysets import JobQuerySet, id_list

JSONValue = Any

# The job columns every claim in dpq.sql returns first, in this order (dpq.sql.claims._JOB_COLUMNS).
CLAIM_COLUMNS = (
    "id",
    "created_at",
    "execute_at",
    "priority",
    "task",
    "args",
    "queue",
    "attempts",
    "last_error",
    "failed_at",
)

# The range of PostgreSQL's integer, the priority column's type.
PRIORITY_MIN = -(2**31)
PRIORITY_MAX = 2**31 - 1


class JobState(enum.StrEnum):
    QUEUED = "queued"
    DELAYED = "delayed"
    RUNNING = "running"
    FAILED = "failed"


class BaseJob(models.Model):
    """A job: one row, claimed and removed by the worker that runs it."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now, db_default=Now())
    execute_at = models.DateTimeField(default=timezone.now, db_default=Now())
    priority = models.IntegerField(
        default=0,
        db_default=0,
        help_text="Jobs with higher priority will be processed first.",
    )
    task = models.CharField(max_length=255)
    args = models.JSONField(default=dict, db_default={})
    queue = models.CharField(max_length=100, default="default", db_default="default")
    attempts = models.IntegerField(
        default=0, db_default=0, help_text="Runs that ended in an exception."
    )
    last_error = models.TextField(
        blank=True,
        default="",
        db_default="",
        help_text="Traceback of the last failure.",
    )
    failed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set when the job gave up; it is not run until requeued.",
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.id}: {self.task}"

    @property
    def state(self) -> JobState:
        """The job's state as far as its row tells (a running job looks queued: see dpq_admin)."""
        if self.failed_at is not None:
            return JobState.FAILED
        if self.execute_at > timezone.now():
            return JobState.DELAYED
        return JobState.QUEUED

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "execute_at": self.execute_at.isoformat() if self.execute_at else None,
            "priority": self.priority,
            "task": self.task,
            "args": self.args,
            "queue": self.queue,
            "attempts": self.attempts,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
        }

    @classmethod
    def dequeue(
        cls,
        exclude_ids: Iterable[int] = (),
        *,
        queue: str = "default",
        using: str = "default",
    ) -> BaseJob | None:
        """Claim the best ready job of ``queue`` and return it, or None.

        The row is deleted and stays locked until the caller's transaction ends. For
        at-most-once delivery, commit before running the task; for at-least-once, run the
        task and commit in the same transaction. To put the job back, call
        ``.save(force_insert=True)`` on it.
        """
        from dpq import sql

        rows = sql.fetch_all(
            using,
            sql.CLAIM_JOB,
            {"queue": queue, "exclude_ids": id_list(exclude_ids)},
            job_table=cls._meta.db_table,
        )
        return cls.from_claim_row(rows[0]) if rows else None

    @classmethod
    def _claim_columns_are_fields(cls) -> bool:
        """Whether the model's fields are the claim's job columns, in the same order."""
        cached = cls.__dict__.get("_dpq_claim_columns_are_fields")
        if cached is None:
            names = tuple(field.attname for field in cls._meta.concrete_fields)
            cached = names == CLAIM_COLUMNS
            cls._dpq_claim_columns_are_fields = cached
        return cached

    @classmethod
    def from_claim_row(cls, row: tuple) -> BaseJob:
        """Build a job from a row of a claim in ``dpq.sql`` (job columns, then the extra ones)."""
        values = (
            *row[:5],
            json.loads(row[5]) if isinstance(row[5], str) else row[5],
            *row[6:10],
        )
        if cls._claim_columns_are_fields():
            # Positional arguments: Django's fast path, as Model.from_db takes it.
            job = cls(*values)
        else:
            job = cls(**dict(zip(CLAIM_COLUMNS, values, strict=True)))
        job._state.adding = False
        job._state.db = None
        # The args as claimed: a failed run is put back with them, whatever the task did to
        # job.args in memory (its other changes are rolled back too).
        job.claimed_args = row[5] if isinstance(row[5], str) else json.dumps(row[5])
        job.starts = row[10] if len(row) > 10 else 0
        job.solo_starts = row[11] if len(row) > 11 else 0
        # The row's xmax before this claim locked it, and this claim's transaction id: see
        # sql.FIND_DEAD_CLAIMS.
        job.held_by = row[12] if len(row) > 12 else 0
        job.claim_xid = row[13] if len(row) > 13 else None
        return job


class Job(BaseJob):
    class Meta:
        db_table = "dpq_job"
        indexes = [
            # The claim: ready jobs of one queue, best first. Failed jobs are left out of the
            # index so that a pile of them costs the claim nothing.
            models.Index(
                "queue",
                models.F("priority").desc(),
                "execute_at",
                "id",
                name="dpq_job_claim_idx",
                condition=Q(failed_at__isnull=True),
            ),
            # When the next delayed job is due: idle workers sleep until then. The id
            # orders jobs due at the same time, for the dashboard's delayed list.
            models.Index(
                "queue",
                "execute_at",
                "id",
                name="dpq_job_due_idx",
                condition=Q(failed_at__isnull=True),
            ),
            # Failed jobs of a queue, newest first (the dashboard's failed list).
            models.Index(
                "queue",
                "failed_at",
                "id",
                name="dpq_job_failed_idx",
                condition=Q(failed_at__isnull=False),
            ),
        ]
        permissions = [("requeue_job", "Can requeue job")]


class JobStart(models.Model):
    """The starts of a job that a worker died running, or that ran alone (crash accounting).

    Written on a separate connection, so it survives the claim transaction's rollback when
    the process dies; deleted inside the claim transaction when the run finishes. A start
    that shared its worker with other jobs is not written at all: its death is found by the
    next claim (see dpq.sql.FIND_DEAD_CLAIMS). No foreign key to the job: it would wait on
    the claim's row lock.
    """

    job_id = models.BigIntegerField(primary_key=True)
    starts = models.IntegerField(default=0)
    solo_starts = models.IntegerField(
        default=0, help_text="Starts while no other job ran beside it."
    )
    started_at = models.DateTimeField(default=timezone.now)
    worker = models.CharField(max_length=63, blank=True, default="")
    claim_xid = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="The claim transaction these counts include; a later claim that finds "
        "it rolled back does not count it again.",
    )

    class Meta:
        db_table = "dpq_jobstart"

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.starts} starts ({self.solo_starts} solo)"


class ScheduleState(models.Model):
    """Where one schedule of a queue stands: the last due time enqueued, and when it is next.

    Written by the worker that schedules the queue (dpq/scheduler.py): a job's insert and
    its schedule's ``last_due_at`` commit in one transaction, under this row's lock, so each
    due time is enqueued once however many workers try. The other columns are the
    schedule as its code declared it, for the dashboard.
    """

    queue = models.CharField(max_length=100)
    name = models.CharField(max_length=255, help_text="The task the schedule enqueues.")
    expression = models.TextField(
        help_text="The schedule as declared: cron, interval or function."
    )
    time_zone = models.CharField(max_length=64, default="UTC")
    args = models.JSONField(default=dict)
    priority = models.IntegerField(default=0)
    notify_channel = models.CharField(max_length=63, blank=True, default="")
    last_due_at = models.DateTimeField(
        help_text="The last due time handled; the next one is computed from it."
    )
    next_due_at = models.DateTimeField(null=True, blank=True)
    last_enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last job was enqueued (run now too)."
    )
    last_job_id = models.BigIntegerField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "dpq_schedule"
        verbose_name = "schedule"
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "name"], name="dpq_schedule_name_uniq"
            )
        ]
        permissions = [("run_schedule", "Can run a schedule now")]

    def __str__(self) -> str:
        return f"{self.queue}: {self.name} ({self.expression})"


class TaskResult(models.Model):
    """The result of a job of Django's Tasks framework (dpq.tasks.DpqBackend).

    A successful job's row leaves ``dpq_job``, so what ``get_result()`` reports of it lives
    here: written in the job's own transaction (SUCCESSFUL and the return value commit with
    the task's writes and the job's removal), and after each failed attempt (its error).
    The id is the job's. No foreign key to the job: it would wait on the claim's row lock.
    """

    job_id = models.BigIntegerField(primary_key=True)
    backend = models.CharField(max_length=100, help_text="The TASKS alias.")
    queue_name = models.CharField(max_length=100)
    task_path = models.CharField(max_length=255)
    priority = models.IntegerField(default=0)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    status = models.CharField(
        max_length=10, help_text="SUCCESSFUL, FAILED, or READY between attempts."
    )
    return_value = models.JSONField(null=True, blank=True)
    errors = models.JSONField(
        default=list, help_text="One {exception_class_path, traceback} per failure."
    )
    worker_ids = models.JSONField(default=list, help_text="One per attempt.")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "dpq_taskresult"
        verbose_name = "task result"
        indexes = [
            # Pruning, and the dashboard's list of recent results.
            models.Index(fields=["finished_at"], name="dpq_taskresult_finished_idx")
        ]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.task_path} {self.status}"


class QueuePause(models.Model):
    """A paused queue: its workers claim nothing while this row exists.

    Written by ``dpq.pauses`` (or by hand in SQL); a trigger sends NOTIFY on the channel
    ``dpq_pause`` with the queue's name on every change, so workers learn of it at once.
    """

    queue = models.CharField(max_length=100, primary_key=True)
    paused_at = models.DateTimeField(default=timezone.now, db_default=Now())
    paused_by = models.CharField(max_length=200, blank=True, default="", db_default="")

    class Meta:
        db_table = "dpq_queuepause"
        verbose_name = "queue pause"

    def __str__(self) -> str:
        return f"{self.queue} paused since {self.paused_at}"


class ThroughputMinute(models.Model):
    """Jobs one queue finished in one minute: written by the workers in batches, kept 24 hours.

    Each worker process adds what it counted every few seconds (one statement for all its
    minutes and queues, never one per job) and deletes the rows older than a day now and
    then (dpq/throughput.py).
    """

    queue = models.CharField(max_length=100)
    minute = models.DateTimeField(help_text="The minute's start.")
    done = models.IntegerField(default=0, help_text="Jobs that succeeded.")
    failed = models.IntegerField(default=0, help_text="Runs that failed.")

    class Meta:
        db_table = "dpq_throughput"
        verbose_name = "throughput minute"
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "minute"], name="dpq_throughput_minute_uniq"
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.queue} {self.minute:%H:%M}: {self.done} done, {self.failed} failed"
        )
