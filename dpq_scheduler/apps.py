from __future__ import annotations

from django.apps import AppConfig


class DpqSchedulerConfig(AppConfig):
    name = "dpq_scheduler"
    verbose_name = "Queue scheduler (django-postgres-queue's)"
    # The original's table has no id column: its key is the task name.
    default_auto_field = "django.db.models.AutoField"
