"""The ``@task``s of the Tasks framework benchmarks: a no-op, and a mark for timing drains.

Imported by dpq's bench (backend DpqBackend) and, in a virtualenv of its own, by the
django-tasks-db side (bench/tasks_db.py): only Django and the framework here, no dpq.
"""

from __future__ import annotations

import time

from django.db import connection

from bench.tasks import MARK_TABLE

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


@task
def noop() -> None:
    return None


@task
def mark(name: str) -> None:
    """Record when this task started; a drain is timed from the first mark to the last."""
    started = time.time()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {MARK_TABLE} (name, t) VALUES (%s, %s)", [name, started]
        )


def enqueue_marks() -> None:
    """The two marks around a fill: "first" claimed before every no-op, "last" after."""
    mark.using(priority=1).enqueue("first")
    mark.using(priority=-1).enqueue("last")
