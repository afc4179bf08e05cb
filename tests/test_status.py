"""manage.py dpq_status and dpq.status: capped counts per queue and state, workers, schedules."""

from __future__ import annotations

import datetime
import io
import json

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from dpq import sql, status
from dpq.models import Job, ScheduleState
from dpq.queue import AtLeastOnceQueue
from tests import tasks
from tests.conftest import start_thread, wait_until


@pytest.fixture
def jobs(transactional_db, queue, make_job):
    """default: 3 queued, 2 delayed, 1 failed; other: 1 queued."""
    later = timezone.now() + datetime.timedelta(hours=1)
    for _ in range(3):
        make_job()
    for _ in range(2):
        make_job(execute_at=later)
    make_job(failed_at=timezone.now())
    other = AtLeastOnceQueue(tasks=tasks.TASKS, name="other")
    make_job(queue=other)
    yield
    other.close()


def by_name(result: status.Status) -> dict[str, status.QueueStatus]:
    return {q.name: q for q in result.queues}


def test_counts_per_queue_and_state(jobs):
    queues = by_name(status.read_status())
    default, other = queues["default"], queues["other"]
    assert (default.queued, default.running, default.delayed, default.failed) == (
        3,
        0,
        2,
        1,
    )
    assert (other.queued, other.delayed, other.failed) == (1, 0, 0)
    assert default.oldest_queued_seconds is not None
    assert 0 <= default.oldest_queued_seconds < 60


def test_counts_stop_at_the_limit_and_say_more_than(jobs, make_job):
    for _ in range(5):
        make_job()
    default = by_name(status.read_status(limit=4))["default"]
    assert default.queued == 5  # the limit, plus the one row that tells "more than"
    assert default.more_than("queued")
    assert not default.more_than("delayed")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(status, "DEFAULT_COUNT_LIMIT", 4)
        from django.test import override_settings

        with override_settings(DPQ_COUNT_LIMIT=4):
            call_command("dpq_status", stdout=out)
    line = next(ln for ln in out.getvalue().splitlines() if ln.startswith("default"))
    assert line.split()[1] == ">4", line


def run_held_job(queue, gate, role: str = "t1"):
    """Run a job that waits at the gate, on a connection named as a worker thread's."""

    def run():
        name = f"dpq:{queue.name}:testhost:4242:{role}"
        with connection.cursor() as cursor:
            cursor.execute(sql.SET_APPLICATION_NAME, {"name": name})
        return queue.run_once()

    thread = start_thread(run)
    assert gate.entered.wait(10)
    return thread


@pytest.mark.parametrize("source", ["row locks", "connections"])
def test_a_running_job_is_running_not_queued(
    jobs, queue, make_job, gate, monkeypatch, source
):
    if source == "connections":
        monkeypatch.setattr(status, "PGROWLOCKS_ROW_LIMIT", -2)
    elif not sql.fetch_one("default", sql.PGROWLOCKS_STATUS)[0]:
        pytest.skip("pgrowlocks is not installed in the test database")
    runner = AtLeastOnceQueue(tasks=tasks.ALL_TASKS)
    held = make_job(task="wait_at_gate", priority=10, queue=runner)
    thread = run_held_job(runner, gate)
    try:
        result = status.read_status()
        default = by_name(result)["default"]
        assert result.running_source == source
        assert (default.queued, default.running) == (3, 1)
        [worker] = [w for w in result.workers if w.host == "testhost"]
        assert (worker.queue, worker.pid, worker.threads, worker.busy) == (
            "default",
            4242,
            1,
            1,
        )
        if source == "row locks":
            [thread_connection] = worker.connections
            assert thread_connection.jobs == [f"{held.id} wait_at_gate"]
        data = result.to_json()
        assert json.loads(json.dumps(data))["workers"][0]["busy"] == 1
    finally:
        gate.release.set()
        thread.join(10)
        runner.close()
    assert thread.error is None
    wait_until(lambda: by_name(status.read_status())["default"].running == 0)


def test_json_output_for_scripts(jobs):
    out = io.StringIO()
    call_command("dpq_status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    default = next(q for q in data["queues"] if q["name"] == "default")
    assert default["queued"] == 3 and default["failed"] == 1
    assert data["limit"] == status.DEFAULT_COUNT_LIMIT
    assert data["paused_queues"] == []
    assert {"workers", "schedules", "running_source", "read_at"} <= set(data)


def test_schedules_show_their_lag_and_pause(transactional_db):
    now = timezone.now()
    ScheduleState.objects.create(
        queue="default",
        name="late",
        expression="@hourly",
        last_due_at=now - datetime.timedelta(hours=2),
        next_due_at=now - datetime.timedelta(minutes=10),
    )
    ScheduleState.objects.create(
        queue="default",
        name="stopped",
        expression="@hourly",
        last_due_at=now,
        next_due_at=now - datetime.timedelta(minutes=10),
        paused=True,
    )
    schedules = {s.name: s for s in status.read_status().schedules}
    assert 590 < schedules["late"].lag_seconds < 700
    assert schedules["stopped"].paused and schedules["stopped"].lag_seconds is None
    out = io.StringIO()
    call_command("dpq_status", stdout=out)
    assert "default: stopped, next due" in out.getvalue()
    assert "paused" in out.getvalue()


def test_an_empty_table(transactional_db):
    assert Job.objects.count() == 0
    out = io.StringIO()
    call_command("dpq_status", stdout=out)
    assert "(no jobs)" in out.getvalue()
    assert "(none connected)" in out.getvalue()


def test_watch_rejects_a_bad_interval(transactional_db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="expected a number of seconds"):
        call_command("dpq_status", "--watch", "soon")
