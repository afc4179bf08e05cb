"""django-tasks-db 0.13's ``db_worker`` draining no-op tasks, for the bench to compare with.

Runs in a virtualenv of its own, ``bench/.venv-tasks-db`` (Django 5.2, the ``django-tasks``
backport and django-tasks-db, never a dependency of dpq), which ``ensure_venv()`` creates on
first use, and in a database of its own on the same server (``<bench database>_tasks_db``),
migrated by django-tasks-db's migrations. Run there as
``python bench/tasks_db.py DATABASE_URL PROCESSES JOBS ROUNDS``, it prints one JSON list:
tasks/s of each round. Each process runs ``manage.py db_worker --batch`` (its own command,
through call_command); a round is timed from the first mark task's start to the last's, as
dpq's drains are (bench/framework_tasks.py), so process start-up is left out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-tasks-db"
VERSION = "0.13"
REQUIREMENTS = [
    f"django-tasks-db[compat]=={VERSION}.*",
    "Django>=5.2,<6",
    "psycopg[binary]",
]


def ensure_venv() -> Path:
    """The python of django-tasks-db's virtualenv, created on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *REQUIREMENTS],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            subprocess.run(["rm", "-rf", str(VENV)], check=False)
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise OSError(f"pip install {' '.join(REQUIREMENTS)}: {last}")
    return python


def version() -> str:
    out = subprocess.run(
        [str(ensure_venv()), "-m", "pip", "show", "django-tasks-db"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(
        (
            line.split(":", 1)[1].strip()
            for line in out.splitlines()
            if "Version" in line
        ),
        VERSION,
    )


def drain_rates(dsn: str, processes: int, jobs: int, rounds: int) -> list[float]:
    """Run db_worker's drain in its virtualenv: tasks/s of each round."""
    done = subprocess.run(
        [ensure_venv(), __file__, dsn, str(processes), str(jobs), str(rounds)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"bench/tasks_db.py exited {done.returncode}:\n{done.stderr}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- Inside django-tasks-db's virtualenv ----------------------------------------------------


def _own_database(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_tasks_db"))


def _create_database(dsn: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin_dsn = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if found.fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _setup(dsn: str) -> None:
    import django
    from django.conf import settings

    parts = urlsplit(dsn)
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": parts.path.lstrip("/"),
                "USER": parts.username or "",
                "PASSWORD": parts.password or "",
                "HOST": parts.hostname or "",
                "PORT": parts.port or "",
                # db_worker closes the connection after each task unless it may persist
                # (close_old_connections): its best setting, not Django's default 0.
                "CONN_MAX_AGE": None,
            }
        },
        INSTALLED_APPS=["django_tasks", "django_tasks_db"],
        TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()


def _loop(ready: Any, results: Any) -> None:
    from django.core.management import call_command
    from django.db import connection

    connection.close()  # a forked child must not share its parent's socket
    ready.wait()
    first = time.time()
    call_command("db_worker", "--batch", "--no-startup-delay", verbosity=0)
    connection.close()
    results.put((first, time.time(), 0))


def _fill(jobs: int) -> None:
    """``jobs`` no-op tasks between two marks: one enqueued by the backend, copied in SQL."""
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from bench import framework_tasks
    from bench.tasks import MARK_TABLE

    table = DBTaskResult._meta.db_table
    columns = [f.column for f in DBTaskResult._meta.concrete_fields if f.column != "id"]
    listed = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {MARK_TABLE} (name text, t float8)")
        cursor.execute(f"TRUNCATE {MARK_TABLE}, {connection.ops.quote_name(table)}")
    template = framework_tasks.noop.enqueue()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {connection.ops.quote_name(table)} (id, {listed}) "
            f"SELECT gen_random_uuid(), {listed} FROM {connection.ops.quote_name(table)}, "
            "generate_series(2, %s) WHERE id = %s",
            [jobs, template.id],
        )
    framework_tasks.enqueue_marks()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(table)}")
        cursor.execute("CHECKPOINT")


def _measure() -> tuple[float | None, int]:
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from bench.tasks import MARK_TABLE

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name, t FROM {MARK_TABLE}")
        marks = dict(cursor.fetchall())
    left = DBTaskResult.objects.exclude(status="SUCCESSFUL").count()
    if "first" not in marks or "last" not in marks:
        return None, left
    return marks["last"] - marks["first"], left


def main() -> None:
    dsn, processes, jobs, rounds = sys.argv[1], *map(int, sys.argv[2:5])
    dsn = _own_database(dsn)
    _create_database(dsn)
    sys.path.insert(0, str(ROOT))
    _setup(dsn)
    import logging

    from django.core.management import call_command
    from django.db import connection

    logging.disable(logging.CRITICAL)  # db_worker logs every task at INFO
    call_command("migrate", verbosity=0)
    from bench.bare import run_processes

    rates = []
    for _ in range(rounds):
        _fill(jobs)
        connection.close()
        run_processes(processes, _loop, ())
        seconds, left = _measure()
        if seconds is None or left:
            raise SystemExit(f"db_worker left {left} of {jobs + 2} tasks unfinished")
        rates.append(jobs / seconds)
    print(json.dumps(rates))


if __name__ == "__main__":
    main()
