from __future__ import annotations

import importlib.util
from types import ModuleType

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

INSTALL_HINT = 'pip install "django-postgres-queue[admin]"'


def require_django_tables2() -> None:
    """Refuse to start the dashboard without django-tables2, saying what to install.

    The admin imports dpq_admin.admin, which needs django_tables2, before any system check
    can run; and since version 2.0 django-tables2 comes only with the ``admin`` extra.
    """
    if importlib.util.find_spec("django_tables2") is None:
        raise ImproperlyConfigured(
            "dpq_admin (the dpq dashboard) is in INSTALLED_APPS but django-tables2, which it "
            f'needs, cannot be imported: run {INSTALL_HINT}, and add "django_tables2" to '
            "INSTALLED_APPS; or remove dpq_admin from INSTALLED_APPS"
        )


class DpqAdminConfig(AppConfig):
    name = "dpq_admin"
    verbose_name = "Queue dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, app_name: str, app_module: ModuleType | None) -> None:
        # Before any app is ready: the admin's autodiscover would fail first, on the import.
        require_django_tables2()
        super().__init__(app_name, app_module)

    def ready(self) -> None:
        from dpq_admin import (
            checks,  # noqa: F401  (registers the system checks)
            schedules,  # noqa: F401  (registers the Schedules page)
        )
