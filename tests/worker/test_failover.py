"""Workers given two hosts: libpq's whole reason for a failed reconnect, and a failover.

Workers are set up as a project would for a primary and a standby: Django's HOST "a,b" and
PORT "p1,p2", OPTIONS target_session_attrs=read-write, so that libpq connects to whichever
host accepts writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.conftest import wait_until
from tests.pgservers import DBNAME, Clusters, PrivateServer, free_port

JOBS = 3000


@pytest.fixture
def clusters() -> Iterator[Clusters]:
    clusters = Clusters()
    try:
        yield clusters
    finally:
        clusters.close()


def both_hosts(*servers: PrivateServer, ports: list[int] | None = None) -> dict:
    """The worker's environment for a database on every one of ``servers`` (or ``ports``)."""
    ports = ports or [server.port for server in servers]
    database = {
        "HOST": ",".join("127.0.0.1" for _ in ports),
        "PORT": ",".join(map(str, ports)),
        "OPTIONS": {"target_session_attrs": "read-write"},
    }
    return {"DPQ_TEST_DATABASE": json.dumps(database)}


def effects(server: PrivateServer) -> int:
    return server.query("SELECT count(*) FROM testapp_effect")[0][0]


def enqueue(server: PrivateServer, count: int, task: str = "record") -> None:
    server.query(
        "INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue) "
        "SELECT now(), now(), 0, %s, '{}', 'default' FROM generate_series(1, %s)",
        (task, count),
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_failed_reconnect_logs_every_host_libpq_tried_and_why(
    clusters, worker_process
):
    server = clusters.primary()
    closed_port = free_port()  # nothing listens there: libpq's first line is about it
    worker = worker_process(
        "--no-listen", "--delay", "0.5",
        queue="tests.queues.worker_queue", threads=2, database=server.url(DBNAME),
        env=both_hosts(ports=[closed_port, server.port]),
    )  # fmt: skip
    worker.wait_for_log("is idle", count=2, timeout=60)

    # The server now refuses read-write sessions, as a standby does, and drops the worker's.
    server.query("ALTER SYSTEM SET default_transaction_read_only = on")
    server.query("SELECT pg_reload_conf()")
    server.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name LIKE 'dpq:%%'"
    )
    worker.wait_for_log("session is read-only", timeout=30)
    server.query("ALTER SYSTEM RESET default_transaction_read_only")
    server.query("SELECT pg_reload_conf()")
    enqueue(server, 1)
    wait_until(lambda: effects(server) == 1, 60)

    assert worker.alive()
    line = next(
        line for line in worker.log.splitlines() if "session is read-only" in line
    )
    assert f"port {closed_port} failed: Connection refused" in line, line
    assert f"port {server.port} failed: session is read-only" in line, line


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_given_both_hosts_carry_on_on_the_promoted_standby(
    clusters, worker_process
):
    primary = clusters.primary("primary")
    standby = clusters.new("standby")
    standby.replicate_from(primary, "standby1")
    standby.start()
    primary.query("ALTER SYSTEM SET synchronous_standby_names = 'standby1'")
    primary.query("SELECT pg_reload_conf()")
    wait_until(
        lambda: (
            primary.query("SELECT sync_state FROM pg_stat_replication") == [("sync",)]
        ),
        60,
    )
    enqueue(primary, JOBS)
    wait_until(lambda: standby.query("SELECT count(*) FROM dpq_job") == [(JOBS,)], 60)
    env = both_hosts(primary, standby)
    workers = [
        worker_process(
            "--burst",
            queue="tests.queues.worker_queue",
            threads=4,
            database=primary.url(DBNAME),
            env=env,
        )
        for _ in range(2)
    ]

    wait_until(lambda: effects(primary) >= JOBS // 5, 120)
    primary.kill_postmaster()
    killed = time.monotonic()
    # Synchronous: every commit a worker saw is on the standby, and nothing more can come.
    committed_before = effects(standby)
    standby.promote()
    wait_until(lambda: effects(standby) > committed_before, 60, interval=0.01)
    recovered_in = time.monotonic() - killed

    for worker in workers:
        assert worker.wait_for_exit(300) == 0, worker.log[-5000:]
    assert standby.query(
        "SELECT count(*), count(DISTINCT job_id) FROM testapp_effect"
    ) == [(JOBS, JOBS)]
    assert standby.query("SELECT count(*) FROM dpq_job") == [(0,)]
    for worker in workers:
        assert "lost its database connection" in worker.log
        assert "error outside a task" not in worker.log
        assert "stopped by an unexpected error" not in worker.log
    assert committed_before < JOBS
    print(
        f"failover: {committed_before} of {JOBS} jobs done on the old primary; the first "
        f"job on the new one committed {recovered_in:.1f}s after its postmaster was killed"
    )
