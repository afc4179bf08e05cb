"""``manage.py migrate`` on a fresh database, with TASKS set to DpqBackend.

Django's system checks build every TASKS backend before any command runs, migrate included:
a backend that queried its tables while being built would stop the migration that creates
them. In a subprocess, on a database of its own, created empty and dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dpq import driver
from tests.worker.conftest import database_url

ROOT = Path(__file__).resolve().parents[2]
NAME = os.environ.get("DPQ_TEST_DB_NAME", "test_dpq") + "_fresh_migrate"


def admin(statement: str) -> None:
    conn = driver.connect(database_url("postgres"))
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


def tables(url: str) -> set[str]:
    conn = driver.connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            return {row[0] for row in cursor.fetchall()}
    finally:
        conn.close()


@pytest.fixture
def fresh_database():
    admin(f'DROP DATABASE IF EXISTS "{NAME}"')
    admin(f'CREATE DATABASE "{NAME}"')
    yield database_url(NAME)
    admin(f'DROP DATABASE IF EXISTS "{NAME}"')


@pytest.mark.slow
def test_migrate_on_a_fresh_database_with_the_backend_configured(fresh_database):
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Applying dpq.0006_taskresult... OK" in output
    assert {"dpq_job", "dpq_taskresult"} <= tables(fresh_database)
