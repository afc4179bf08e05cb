from __future__ import annotations

from django.apps import AppConfig


class DpqAdminConfig(AppConfig):
    name = "dpq_admin"
    verbose_name = "Queue dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dpq_admin import (
            checks,  # noqa: F401  (registers the system checks)
            schedules,  # noqa: F401  (registers the Schedules page)
        )
