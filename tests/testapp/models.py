"""Tables the test tasks write to, so that a test can see what a job committed."""

from __future__ import annotations

from django.db import models


class Effect(models.Model):
    """One row per job run that committed; the unique job_id catches a second commit."""

    job_id = models.BigIntegerField(unique=True)
    note = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"effect of job {self.job_id}"
