"""A PostgreSQL restart under a running worker: its jobs return to the queue, not as crashes,
and a paused queue stays paused.

The server is a private cluster from the local PostgreSQL binaries, so that restarting it
leaves the suite's own server alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import wait_until
from tests.pgservers import Clusters, PrivateServer, running_jobs, worker_sessions


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    clusters = Clusters()
    try:
        yield clusters.primary()
    finally:
        clusters.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_server_restart_is_not_a_crash_of_every_running_job(
    private_server, worker_process
):
    private_server.query(
        "INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue) "
        "SELECT now(), now(), 0, 'slow_record', '{\"seconds\": 5}', 'default' "
        "FROM generate_series(1, 16)"
    )
    worker = worker_process(
        "--burst",
        queue="tests.queues.worker_queue",
        threads=8,
        database=private_server.url("dpq_restart"),
    )
    wait_until(lambda: running_jobs(private_server) == 8, 60)

    private_server.restart()
    up = time.monotonic()
    wait_until(lambda: running_jobs(private_server) == 8, 60)
    back_in = time.monotonic() - up

    assert worker.wait_for_exit(120) == 0, worker.log
    assert back_in < 15, f"8 jobs ran at once again {back_in:.1f}s after the restart"
    effects = private_server.query("SELECT job_id FROM testapp_effect")
    assert len(effects) == 16
    assert private_server.query("SELECT count(*) FROM dpq_job") == [(0,)]
    assert private_server.query("SELECT count(*) FROM dpq_jobstart") == [(0,)]
    assert "was running when a worker died" not in worker.log
    assert "not counted as crashes" in worker.log
    print(f"8 jobs at once again {back_in:.1f}s after the server accepted connections")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_pause_survives_a_server_restart_under_a_running_worker(
    private_server, worker_process
):
    private_server.query("INSERT INTO dpq_queuepause (queue) VALUES ('default')")
    private_server.query(
        "INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue) "
        "SELECT now(), now(), 0, 'record', '{}', 'default' FROM generate_series(1, 3)"
    )
    worker = worker_process(
        queue="tests.queues.worker_queue",
        threads=2,
        database=private_server.url("dpq_restart"),
    )
    worker.wait_for_log("is paused (since")

    # An immediate shutdown: the server starts again by crash recovery, which empties
    # unlogged tables; the pause is a logged row and stays.
    private_server.stop()
    private_server.start()
    # The worker's dispatcher reconnects and reads the pause again; nothing is claimed.
    wait_until(lambda: worker_sessions(private_server) > 0, 60)
    time.sleep(4)  # several idle checks (--delay 1)
    assert private_server.query("SELECT count(*) FROM testapp_effect") == [(0,)]
    assert private_server.query("SELECT count(*) FROM dpq_job") == [(3,)]

    private_server.query("DELETE FROM dpq_queuepause WHERE queue = 'default'")
    wait_until(
        lambda: private_server.query("SELECT count(*) FROM testapp_effect") == [(3,)],
        60,
    )
    assert "is resumed: claiming again" in worker.log
