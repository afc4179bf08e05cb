"""Tables the test tasks write to, so that a test can see what a job committed."""

from __future__ import annotations

from django.db import models


class Effect(models.Model):
    """One row per job run that committed; the unique job_id catches a second commit."""

    job_id = models.BigIntegerField(unique=True)
    note = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"effect of job {self.job_id}"


class Child(models.Model):
    """Points at an Effect. Django makes the foreign key DEFERRABLE INITIALLY DEFERRED, so a
    child of a missing effect is refused only when its transaction commits."""

    effect = models.ForeignKey(Effect, on_delete=models.CASCADE)

    def __str__(self) -> str:
        return f"child of effect {self.effect_id}"


class Counter(models.Model):
    """Rows that two SERIALIZABLE transactions read and write to conflict with each other."""

    name = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.name


class Run(models.Model):
    """One row per job run that committed, with the worker that ran it; job_id is not unique,
    so that a job committed twice shows as two rows."""

    job_id = models.BigIntegerField(db_index=True)
    worker = models.CharField(max_length=50)

    def __str__(self) -> str:
        return f"run of job {self.job_id} by {self.worker}"
