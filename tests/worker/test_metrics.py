"""dpq_worker --metrics-port: real workers scraped over HTTP, the exposition format parsed."""

from __future__ import annotations

import os
import re
import signal
import socket
import urllib.error
import urllib.request

import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from dpq.models import Job
from tests.conftest import wait_until
from tests.queues import queue

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(port: int) -> dict[tuple, float]:
    """Every sample the worker serves: (name, sorted labels) -> value; {} if not up yet."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/", timeout=10
        ) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def jobs_total(values: dict, task: str, outcome: str) -> float:
    key = (
        "dpq_jobs_total",
        (("outcome", outcome), ("queue", "default"), ("task", task)),
    )
    return values.get(key, 0.0)


def terminate_worker_connections(pid: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name LIKE %s AND application_name NOT LIKE %s",
            [f"dpq:%:{pid}:%", "%:starts"],
        )
        return cursor.fetchone()[0]


def test_one_worker_counts_jobs_threads_and_reconnects(worker_process):
    port = free_port()
    worker = worker_process("--metrics-port", str(port), threads=2)
    worker.wait_for_log("Serving Prometheus metrics")
    queue.enqueue_many([("noop", {})] * 5 + [("fail", {})])

    def counted():
        values = scrape(port)
        return values if jobs_total(values, "fail", "failed") == 1 else None

    values = wait_until(counted, 60)
    assert jobs_total(values, "noop", "succeeded") == 5
    # max_attempts 3: two retries, then kept as failed.
    assert jobs_total(values, "fail", "retried") == 2
    duration = (
        "dpq_job_duration_seconds_count",
        (("queue", "default"), ("task", "noop")),
    )
    assert values[duration] == 5
    assert (
        values[
            (
                "dpq_job_duration_seconds_bucket",
                (("le", "+Inf"), ("queue", "default"), ("task", "noop")),
            )
        ]
        == 5
    )

    def threads_idle():
        values = scrape(port)
        idle = values.get(
            ("dpq_worker_threads", (("queue", "default"), ("state", "idle")))
        )
        busy = values.get(
            ("dpq_worker_threads", (("queue", "default"), ("state", "busy")))
        )
        return (idle, busy) == (2, 0)

    wait_until(threads_idle, 30)

    # Connections lost: each one reconnects, and is counted.
    assert terminate_worker_connections(worker.pid) == 3
    queue.enqueue_many([("noop", {})] * 4)

    def reconnected():
        values = scrape(port)
        listen = values.get(
            (
                "dpq_worker_reconnects_total",
                (("connection", "listen"), ("queue", "default")),
            )
        )
        thread = values.get(
            (
                "dpq_worker_reconnects_total",
                (("connection", "thread"), ("queue", "default")),
            )
        )
        return listen and thread and jobs_total(values, "noop", "succeeded") == 9

    wait_until(reconnected, 60)
    worker.send(signal.SIGTERM)
    assert worker.wait_for_exit() == 0


def test_processes_share_one_endpoint_and_count_crashes(worker_process):
    port = free_port()
    worker = worker_process("--metrics-port", str(port), "--processes", "2", threads=2)
    worker.wait_for_log("Serving Prometheus metrics of every worker process")
    directory = re.search(r"multiprocess mode, (\S+)\)", worker.log).group(1)
    assert os.path.isdir(directory)
    neighbours = [("noop", {})] * 10
    queue.enqueue_many([*neighbours, ("kill_process", {}), *neighbours])

    def settled():
        if Job.objects.filter(failed_at=None).exists():
            return None
        values = scrape(port)
        done = jobs_total(values, "kill_process", "failed") == 1
        # Counters move once a job's transaction has committed: a neighbour that committed
        # in the instant before its process was killed is not counted. Only the first death
        # has neighbours in its process (after it the job runs alone), so one at most.
        done = done and jobs_total(values, "noop", "succeeded") >= 19
        return values if done else None

    try:
        values = wait_until(settled, 300)
    except pytest.fail.Exception:
        pytest.fail(
            f"not settled within 300s: {scrape(port)!r}; the worker's log:\n"
            f"{worker.log[-6000:]}"
        )
    assert jobs_total(values, "noop", "succeeded") <= 20
    # Each claim of the job after a death counts it; it ends failed after crash_limit.
    assert jobs_total(values, "kill_process", "crashed") >= 1
    assert "restarting" in worker.log or "starting another" in worker.log

    # Two processes of two threads each, summed over the live processes only.
    def threads_total():
        values = scrape(port)
        states = [
            values.get(("dpq_worker_threads", (("queue", "default"), ("state", s))), 0)
            for s in ("busy", "idle")
        ]
        return sum(states) == 4

    wait_until(threads_total, 30)
    worker.send(signal.SIGTERM)
    assert worker.wait_for_exit() == 0
    assert not os.path.exists(directory)


def test_metrics_port_in_use_is_a_clear_error(worker_process):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = worker_process(
            "--metrics-port", str(port), "--metrics-addr", "127.0.0.1", threads=1
        )
        assert worker.wait_for_exit() != 0
    assert f"cannot serve metrics on 127.0.0.1:{port}" in worker.log
