"""The original django-postgres-queue 1.0.0 draining no-op jobs, for the bench to compare with.

Runs in a virtualenv of its own (the original's package is also called ``dpq``), which
``ensure_venv()`` creates in ``bench/.venv-original`` on first use, and in a database of its
own (``<bench database>_original``), migrated by the original's migrations. Run there as
``python bench/original.py DATABASE_URL PROCESSES JOBS ROUNDS``, it prints one JSON list: jobs/s
of each round. Each process loops on the original's ``AtLeastOnceQueue.run_once()``, as its
``Worker`` command does; a round is timed from the release of the started processes to the
last job's commit, as the bare loop is.
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
VENV = ROOT / "bench" / ".venv-original"
REQUIREMENTS = ["django-postgres-queue==1.0.0", "Django>=4.2,<5", "psycopg2-binary"]


def ensure_venv() -> Path:
    """The python of the original package's virtualenv, created on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True
        )
    return python


def drain_rates(dsn: str, processes: int, jobs: int, rounds: int) -> list[float]:
    """Run the original's drain in its virtualenv: jobs/s of each round."""
    out = subprocess.run(
        [ensure_venv(), __file__, dsn, str(processes), str(jobs), str(rounds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- Inside the original's virtualenv -----------------------------------------------------


def _own_database(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_original"))


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
            }
        },
        INSTALLED_APPS=["dpq"],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()


def _create_database(dsn: str) -> None:
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(dsn)
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        name = parts.path.lstrip("/")
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()


def _noop(queue: Any, job: Any) -> None:
    return None


def _loop(ready: Any, results: Any) -> None:
    from django.db import connection

    from dpq.queue import AtLeastOnceQueue

    connection.close()  # a forked child must not share its parent's socket
    queue = AtLeastOnceQueue(tasks={"noop": _noop})
    connection.ensure_connection()
    ready.wait()
    claimed = 0
    first = last = time.time()
    while queue.run_once():
        claimed += 1
        last = time.time()
    connection.close()
    results.put((first, last, claimed))


def _fill(jobs: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE dpq_job")
        cursor.execute(
            "INSERT INTO dpq_job (created_at, execute_at, priority, task, args) "
            "SELECT now(), now(), 0, 'noop', '{}' FROM generate_series(1, %s)",
            [jobs],
        )
        cursor.execute("VACUUM ANALYZE dpq_job")
        cursor.execute("CHECKPOINT")


def main() -> None:
    dsn, processes, jobs, rounds = sys.argv[1], *map(int, sys.argv[2:5])
    dsn = _own_database(dsn)
    _create_database(dsn)
    _setup(dsn)
    import logging

    from django.core.management import call_command

    logging.disable(logging.CRITICAL)  # the original logs every job at INFO
    call_command("migrate", verbosity=0)
    from django.db import connection

    # The bench package's process runner (stdlib and psycopg2 only, both installed here).
    sys.path.insert(0, str(ROOT))
    from bench.bare import run_processes

    rates = []
    for _ in range(rounds):
        _fill(jobs)
        connection.close()
        seconds, done, _cpu = run_processes(processes, _loop, ())
        if done != jobs:
            raise SystemExit(f"the original drained {done} of {jobs} jobs")
        rates.append(jobs / seconds)
    print(json.dumps(rates))


if __name__ == "__main__":
    main()
