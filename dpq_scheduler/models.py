from __future__ import annotations

from django.db import models


class LastScheduledFor(models.Model):
    """The due time a Scheduler command last enqueued for a task (the original's table).

    Read and advanced by dpq.scheduler's engine under a row lock, in the transaction that
    enqueues the job: a due time is enqueued once even with two Scheduler commands running.
    """

    task = models.CharField(max_length=255, primary_key=True)
    execute_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.task}: {self.execute_at}"
