"""The job table's QuerySet: the states a person sees, and requeue and delete that skip running jobs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import models
from django.utils import timezone


@dataclass(frozen=True)
class RequeueResult:
    """What a requeue did: jobs that are queued again and jobs it had to leave alone."""

    requeued: int
    skipped_running: int
    skipped_queued: int
    missing: int


@dataclass(frozen=True)
class DeleteResult:
    """What a delete did: jobs removed and jobs it had to leave alone."""

    deleted: int
    skipped_running: int
    missing: int


class JobQuerySet(models.QuerySet):
    def queued(self) -> JobQuerySet:
        """Jobs ready to run (including those a worker holds right now: only row locks tell them apart)."""
        return self.filter(failed_at__isnull=True, execute_at__lte=timezone.now())

    def delayed(self) -> JobQuerySet:
        return self.filter(failed_at__isnull=True, execute_at__gt=timezone.now())

    def failed(self) -> JobQuerySet:
        return self.filter(failed_at__isnull=False)

    def requeue(
        self, ids: Iterable[int], *, reset_attempts: bool = False
    ) -> RequeueResult:
        """Make failed or delayed jobs ready to run now.

        Clears ``failed_at`` and sets ``execute_at = now()``; ``attempts`` is kept unless
        ``reset_attempts``. Rows that a worker holds locked (running jobs) are skipped, not
        waited for (``FOR UPDATE SKIP LOCKED``), and counted in the result.
        """
        from dpq import sql

        params = {"ids": id_list(ids), "reset_attempts": reset_attempts}
        row = sql.fetch_one(
            self.db, sql.REQUEUE_JOBS, params, job_table=self.model._meta.db_table
        )
        return RequeueResult(*row)

    def requeue_failed(
        self,
        *,
        queue: str | None = None,
        task: str | None = None,
        reset_attempts: bool = False,
    ) -> RequeueResult:
        """Requeue every failed job, or those of one queue and/or one task."""
        failed = self.failed()
        if queue is not None:
            failed = failed.filter(queue=queue)
        if task is not None:
            failed = failed.filter(task=task)
        return self.requeue(
            failed.values_list("id", flat=True), reset_attempts=reset_attempts
        )

    def delete_jobs(self, ids: Iterable[int]) -> DeleteResult:
        """Delete jobs by id, skipping rows that a worker holds locked (running jobs)."""
        from dpq import sql

        row = sql.fetch_one(
            self.db,
            sql.DELETE_JOBS,
            {"ids": id_list(ids)},
            job_table=self.model._meta.db_table,
        )
        return DeleteResult(*row)


def id_list(ids: Iterable[int]) -> list[int]:
    """Job ids as a list of ints for a bound array parameter; ValueError names a bad one."""
    try:
        return [int(i) for i in ids]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"job ids must be integers: {exc}") from exc
