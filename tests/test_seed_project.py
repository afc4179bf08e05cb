"""A project written against django-postgres-queue 1.0.0 (tests/seedproject) runs unchanged.

Its own tests (a TestCase that runs jobs, a Worker subclass's run_available_tasks()) pass
under ``manage.py test``, and its worker command, a Worker subclass with a handle() and a
handle_shutdown() of its own, runs as a real process on a scratch database of its own.
The same tests pass on the original 1.0.0 (Django 4.2): see CHANGELOG.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from dpq import driver
from tests.conftest import wait_until

PROJECT = Path(__file__).resolve().parent / "seedproject"
BASE_NAME = os.environ.get("DPQ_TEST_DB_NAME", "test_dpq")

pytestmark = pytest.mark.slow


def connect(url: str):
    conn = driver.connect(url)
    conn.autocommit = True
    return conn


def manage(*args: str, database_url: str, **popen: object):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "seedproject.settings",
        "SEEDPROJECT_TEST_DB_NAME": f"{BASE_NAME}_seedproject_test",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTHONPATH", None)
    argv = [sys.executable, "manage.py", *args]
    if popen:
        return subprocess.Popen(argv, cwd=PROJECT, env=env, **popen)
    return subprocess.run(
        argv,
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def project_database():
    """A fresh database migrated for the seed project; dropped after the test."""
    url = os.environ["DATABASE_URL"]
    name = f"{BASE_NAME}_seedproject"
    admin = connect(url)
    drop = driver.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
        driver.sql.Identifier(name)
    )
    with admin.cursor() as cursor:
        cursor.execute(drop)
        cursor.execute(
            driver.sql.SQL("CREATE DATABASE {}").format(driver.sql.Identifier(name))
        )
    parts = urllib.parse.urlsplit(url)
    project_url = urllib.parse.urlunsplit(parts._replace(path="/" + name))
    migrated = manage("migrate", "--noinput", database_url=project_url)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    db = connect(project_url)
    try:
        yield project_url, db
    finally:
        db.close()
        with admin.cursor() as cursor:
            cursor.execute(drop)
        admin.close()


def scalar(db, query: str) -> object:
    with db.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]


def place_orders(url: str, count: int) -> None:
    code = f"from shop.queue import place_order\nfor n in range({count}): place_order(f'c{{n}}@example.com')"
    done = manage("shell", "-c", code, database_url=url)
    assert done.returncode == 0, done.stdout + done.stderr


def test_seed_project_passes_its_own_tests_under_manage_py_test():
    done = manage("test", "--noinput", database_url=os.environ["DATABASE_URL"])

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Ran 5 tests" in output
    assert "being accessed by other users" not in output


def test_seed_project_worker_subclass_drains_with_run_available_tasks(
    project_database,
):
    url, db = project_database
    place_orders(url, 3)

    done = manage("worker", "--drain", database_url=url)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "drained the queue" in done.stdout
    assert scalar(db, "SELECT count(*) FROM shop_order WHERE confirmed") == 3
    assert scalar(db, "SELECT count(*) FROM dpq_job") == 0


def test_seed_project_worker_subclass_stops_through_its_handle_shutdown(
    project_database, tmp_path
):
    url, db = project_database
    place_orders(url, 1)
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = manage(
            "worker",
            "--listen",
            database_url=url,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: scalar(db, "SELECT count(*) FROM shop_order WHERE confirmed") == 1
        )
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)

    output = log_path.read_text()
    assert code == 0, output
    assert f"stopping on signal {int(signal.SIGTERM)}" in output
    assert "dpq worker stopped" in output
