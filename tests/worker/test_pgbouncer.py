"""Workers and the dashboard behind PgBouncer 1.18 (Debian's package), in both pooling modes.

Session mode: each client connection keeps its server connection, so LISTEN and the prepared
claim work. Transaction mode: each transaction may run on another server connection, so the
prepared claim goes missing; the worker must notice once for the whole process, without
losing a connection or logging an error, and claim unprepared from then on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import wait_until
from tests.pgservers import Clusters, PrivateServer
from tests.poolers import Pgbouncer
from tests.worker.conftest import ROOT

JOBS = 5000
THREADS = 8
DASHBOARD_PAGES = ("", "queued/", "running/", "failed/")

# Logs in as a superuser through the test client and prints each dashboard page's status.
DASHBOARD_PROBE = """
import django
django.setup()
from django.contrib.auth.models import User
from django.test import Client
user, _ = User.objects.get_or_create(
    username="ops", defaults={"is_staff": True, "is_superuser": True}
)
client = Client()
client.force_login(user)
for page in %r:
    response = client.get("/admin/dpq/job/" + page)
    print(page or "dashboard", response.status_code)
"""


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    clusters = Clusters()
    try:
        yield clusters.primary()
    finally:
        clusters.close()


@pytest.fixture
def pgbouncer(server) -> Iterator:
    started: list[Pgbouncer] = []

    def start(mode: str, pool_size: int) -> Pgbouncer:
        bouncer = Pgbouncer(server, mode, pool_size)
        started.append(bouncer)
        bouncer.start()
        return bouncer

    yield start
    for bouncer in started:
        bouncer.stop()


def enqueue_records(server: PrivateServer, count: int) -> None:
    server.query(
        "INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue) "
        "SELECT now(), now(), 0, 'record', '{}', 'default' FROM generate_series(1, %s)",
        (count,),
    )


def dashboard_statuses(url: str) -> dict[str, int]:
    """The dashboard's pages, served by a Django process whose database is ``url``."""
    result = subprocess.run(
        [sys.executable, "-c", DASHBOARD_PROBE % (DASHBOARD_PAGES,)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
            "PYTHONPATH": str(ROOT),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {
        page: int(status)
        for page, status in (line.split() for line in result.stdout.splitlines())
    }


def assert_ran_exactly_once(server: PrivateServer, count: int) -> None:
    assert server.query(
        "SELECT count(*), count(DISTINCT job_id) FROM testapp_effect"
    ) == [(count, count)]
    assert server.query("SELECT count(*) FROM dpq_job") == [(0,)]


def errors_in(log: str) -> list[str]:
    """Log lines at ERROR or above, and any lost connection."""
    return [
        line
        for line in log.splitlines()
        if re.search(r" (ERROR|CRITICAL) ", line)
        or "lost its database connection" in line
    ]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_transaction_pooling_runs_every_job_once_and_gives_up_preparing_once(
    server, pgbouncer, worker_process
):
    bouncer = pgbouncer("transaction", pool_size=THREADS)  # the worker has 10
    enqueue_records(server, JOBS)

    worker = worker_process(
        "--no-listen", "--delay", "0.2", "--burst",
        queue="tests.queues.worker_queue", threads=THREADS, database=bouncer.url(),
    )  # fmt: skip
    wait_until(lambda: server.query("SELECT count(*) FROM testapp_effect")[0][0], 60)
    pages = dashboard_statuses(bouncer.url())

    assert worker.wait_for_exit(300) == 0, worker.log[-5000:]
    assert_ran_exactly_once(server, JOBS)
    assert pages == dict.fromkeys(["dashboard", *DASHBOARD_PAGES[1:]], 200)
    log = worker.log
    assert errors_in(log) == [], log[-5000:]
    # One thread finds it out, and the whole process stops preparing.
    assert log.count("went missing from its connection") == 1, log[-5000:]
    assert "does not exist" not in log, log[-5000:]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_session_pooling_listens_and_runs_every_job_once(
    server, pgbouncer, worker_process
):
    # A session holds its server connection: room for every connection of the worker.
    bouncer = pgbouncer("session", pool_size=THREADS + 4)
    worker = worker_process(
        "--listen", "--delay", "30",
        queue="tests.queues.worker_queue", threads=THREADS, database=bouncer.url(),
    )  # fmt: skip
    worker.wait_for_log("is idle", count=THREADS, timeout=60)
    # Only a notification can wake the worker before its 30 s poll: LISTEN works.
    raw = bouncer.server.connect()
    with raw.cursor() as cursor:
        cursor.execute(
            "INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue) "
            "VALUES (now(), now(), 0, 'record', '{}', 'default') RETURNING id"
        )
        cursor.execute("SELECT pg_notify('dpq-tests', 'default')")
    raw.close()
    wait_until(lambda: server.query("SELECT count(*) FROM testapp_effect")[0][0], 15)

    enqueue_records(server, JOBS - 1)
    server.query("SELECT pg_notify('dpq-tests', 'default')")
    pages = dashboard_statuses(bouncer.url())
    wait_until(
        lambda: server.query("SELECT count(*) FROM dpq_job") == [(0,)], timeout=300
    )

    assert_ran_exactly_once(server, JOBS)
    assert pages == dict.fromkeys(["dashboard", *DASHBOARD_PAGES[1:]], 200)
    log = worker.log
    assert errors_in(log) == [], log[-5000:]
    assert "went missing" not in log  # the claim stays prepared in session mode
