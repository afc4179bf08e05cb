"""System checks of the dashboard: django_tables2 is installed (``manage.py check``), and
pgrowlocks is installed (``manage.py check --database``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.core import checks
from django.db import DatabaseError

from dpq_admin import state


@checks.register(checks.Tags.admin)
def check_dependencies(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Error when django_tables2 is not an installed app: every dashboard page loads its
    template tags and would answer 500 (TemplateSyntaxError)."""
    if apps.is_installed("django_tables2"):
        return []
    hint = 'Add "django_tables2" to INSTALLED_APPS.'
    if importlib.util.find_spec("django_tables2") is None:
        hint = (
            'Run pip install "django-postgres-queue[admin]", then add "django_tables2" to '
            "INSTALLED_APPS."
        )
    return [
        checks.Error(
            "'django_tables2' must be in INSTALLED_APPS to use the dpq dashboard "
            "(dpq_admin): its pages are django-tables2 tables.",
            hint=hint,
            id="dpq_admin.E001",
        )
    ]


@checks.register(checks.Tags.database)
def check_pgrowlocks(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Warn when pgrowlocks is missing: the dashboard then cannot tell running jobs apart.

    Runs only with database checks (``migrate``, ``check --database default``), as Django
    asks of checks that query the database.
    """
    found = []
    for alias in databases or ():
        try:
            status = state.read_pgrowlocks_status(alias)
        except DatabaseError as exc:
            found.append(
                checks.Warning(
                    f"Cannot tell whether pgrowlocks is installed in database {alias!r}: {exc}",
                    hint="Check the connection, then run manage.py check --database "
                    f"{alias}.",
                    id="dpq_admin.W002",
                )
            )
            continue
        if not status.installed:
            where = (
                ""
                if status.available
                else " (install PostgreSQL's contrib package first)"
            )
            found.append(
                checks.Warning(
                    f"The pgrowlocks extension is not installed in database {alias!r}: the "
                    "dashboard shows running jobs as unknown and counts them as queued.",
                    hint=f"As a superuser, run CREATE EXTENSION pgrowlocks; in that "
                    f"database{where}, or run manage.py migrate dpq_admin as a superuser.",
                    id="dpq_admin.W001",
                )
            )
    return found
