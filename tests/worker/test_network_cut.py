"""A network cut between one worker host and PostgreSQL, in the middle of its jobs.

Each worker runs on a host of its own (a network namespace linked to this one by a veth
pair); PostgreSQL listens on this end of each link, with the server settings the README
pairs with dpq's keepalives. The cut host's jobs must become runnable by the other worker
within 60 s (the server notices the silent client and rolls its transactions back), and once
the link is back the cut worker commits nothing: each job's Run rows are counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from dpq import driver
from dpq.keepalives import WORKER_CONNECTION_DEFAULTS, apply_worker_defaults
from tests.conftest import wait_until
from tests.netns import NET, Hosts
from tests.pgservers import (
    DBNAME,
    Clusters,
    PrivateServer,
    running_jobs,
    worker_sessions,
)

THREADS = 4
# Long enough that the cut worker's tasks end after its link is back.
CUT_TASK_SECONDS = 75
# The server settings the README pairs with dpq's, shorter: a silent client is dropped after
# about 11 s. Keepalives alone do not cover a session whose last reply was not acknowledged
# yet when the link went (a delayed ACK): tcp_user_timeout does.
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": 5,
    "tcp_keepalives_interval": 2,
    "tcp_keepalives_count": 3,
    "tcp_user_timeout": 10000,
}


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    hosts = Hosts()
    try:
        yield hosts
    finally:
        hosts.close()


@pytest.fixture
def server(hosts) -> Iterator[tuple[PrivateServer, list]]:
    cut_host, other_host = hosts.new(), hosts.new()
    clusters = Clusters()
    try:
        server = clusters.new(
            addresses=f"127.0.0.1,{cut_host.server_address},{other_host.server_address}",
            settings=SERVER_KEEPALIVES,
        )
        server.initdb()
        server.allow(f"10.{NET}.0.0/16")
        server.start()
        server.create_database()
        yield server, [cut_host, other_host]
    finally:
        clusters.close()


def runs(server: PrivateServer) -> list[tuple[int, str]]:
    return server.query("SELECT job_id, worker FROM testapp_run ORDER BY job_id")


def connections_of(server: PrivateServer, pid: int) -> int:
    return worker_sessions(server, f"dpq:%:{pid}:t%")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_cut_workers_jobs_run_elsewhere_and_it_commits_none_of_them_later(
    server, worker_process
):
    server, (cut_host, other_host) = server
    args = json.dumps({"seconds": {"cut": CUT_TASK_SECONDS}})
    ids = [
        row[0]
        for row in server.query(
            "INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue) "
            "SELECT now(), now(), 0, 'count_run', %s, 'default' "
            "FROM generate_series(1, %s) RETURNING id",
            (args, THREADS),
        )
    ]

    def start(host, name: str):
        return worker_process(
            "--delay", "1",
            queue="tests.queues.worker_queue", threads=THREADS,
            database=server.url(DBNAME, host=host.server_address),
            env={"DPQ_TEST_WORKER": name}, prefix=host.exec_prefix,
        )  # fmt: skip

    cut_worker = start(cut_host, "cut")
    wait_until(lambda: running_jobs(server) == THREADS, 60)
    cut_host.cut()
    cut_at = time.monotonic()
    other = start(other_host, "other")
    wait_until(lambda: len(runs(server)) == THREADS, 90)
    runnable_after = time.monotonic() - cut_at
    # The cut worker notices too, without the link: its dispatcher's next query goes
    # unanswered, and dpq's tcp_user_timeout ends the wait (the kernel alone: 15 minutes).
    cut_worker.wait_for_log("The listening connection was lost", timeout=60)
    noticed_after = time.monotonic() - cut_at
    cut_host.mend()
    # The cut worker's tasks end, find their sessions gone, and the worker reconnects.
    cut_worker.wait_for_log(
        "lost its database connection", count=THREADS, timeout=CUT_TASK_SECONDS + 60
    )
    wait_until(lambda: connections_of(server, cut_worker.pid) == THREADS, 90)
    # Both workers go on: more jobs, run by whichever claims them, each once.
    more = server.query(
        "INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue) "
        "SELECT now(), now(), 0, 'count_run', '{}', 'default' "
        "FROM generate_series(1, 40) RETURNING id"
    )
    wait_until(lambda: server.query("SELECT count(*) FROM dpq_job") == [(0,)], 60)

    assert runnable_after < 60, f"the cut worker's jobs ran {runnable_after:.1f}s later"
    done = runs(server)
    assert [job_id for job_id, _ in done] == sorted(ids + [row[0] for row in more])
    assert {worker for job_id, worker in done if job_id in ids} == {"other"}
    assert cut_worker.alive() and other.alive()
    assert "stopped by an unexpected error" not in cut_worker.log
    print(
        f"network cut: the cut worker's {THREADS} jobs were run by the other worker "
        f"{runnable_after:.1f}s after the cut; the cut worker noticed after "
        f"{noticed_after:.1f}s"
    )


@pytest.mark.django_db(transaction=True)
def test_worker_connections_get_keepalives_unless_the_project_set_its_own():
    from django.db import connections

    wrapper = connections["default"]
    options = wrapper.settings_dict["OPTIONS"]
    saved = dict(options)
    options["keepalives_idle"] = 42  # the project's own choice
    try:
        added = apply_worker_defaults("default")
        raw = wrapper.get_new_connection(wrapper.get_connection_params())
        try:
            if driver.is_psycopg3:
                params = raw.info.get_parameters()
            else:
                params = raw.get_dsn_parameters()
        finally:
            raw.close()
    finally:
        options.clear()
        options.update(saved)

    assert "keepalives_idle" not in added
    assert params["keepalives_idle"] == "42"
    assert params["tcp_user_timeout"] == str(
        WORKER_CONNECTION_DEFAULTS["tcp_user_timeout"]
    )
    assert params["keepalives_count"] == "3"
