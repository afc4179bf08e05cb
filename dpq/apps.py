from __future__ import annotations

from django.apps import AppConfig


class DpqConfig(AppConfig):
    name = "dpq"
    verbose_name = "Queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dpq import checks  # noqa: F401  (registers the system checks)
