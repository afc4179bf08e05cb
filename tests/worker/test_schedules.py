"""Schedules run by real worker processes: one schedules at a time, each due time once.

The queue (tests.queues.scheduled_queue) enqueues record_due every second and, after a
takeover, every due time it missed: the due times its Effects record must then follow each
other exactly one second apart, none twice and none left out.
"""

from __future__ import annotations

import datetime
import itertools
import os
import signal

import pytest

from dpq import driver
from dpq.models import ScheduleState
from tests.conftest import wait_until
from tests.testapp.models import Effect
from tests.worker.conftest import fetch
from tests.worker.test_server_restart import PrivateServer, private_server  # noqa: F401

QUEUE = "tests.queues.scheduled_queue"
LEADS = "Scheduling queue 'scheduled' from this worker"
STEP = datetime.timedelta(seconds=1)


def due_times() -> list[datetime.datetime]:
    return [
        datetime.datetime.fromisoformat(note)
        for note in Effect.objects.order_by("note").values_list("note", flat=True)
    ]


def assert_each_due_time_once_without_gaps(times: list[datetime.datetime]) -> None:
    assert len(times) == len(set(times)), "a due time was enqueued twice"
    gaps = [b - a for a, b in itertools.pairwise(times) if b - a != STEP]
    assert not gaps, f"due times not one second apart: {gaps}"


def scheduler_connections() -> list[str]:
    rows = fetch(
        "SELECT application_name FROM pg_stat_activity "
        "WHERE application_name LIKE 'dpq:scheduled:%%:scheduler' "
        # Only this test database's: other suites may run against the same server.
        "AND datname = current_database()"
    )
    return [row[0] for row in rows]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_schedule_one_at_a_time_and_enqueue_each_due_time_once(
    worker_process,
):
    first = worker_process(queue=QUEUE, threads=2)
    second = worker_process(queue=QUEUE, threads=2)
    wait_until(lambda: LEADS in first.log + second.log, 30)
    wait_until(lambda: Effect.objects.count() >= 8, 60)

    # Both at once: killing one first would let the other take over before its own end.
    for worker in (first, second):
        os.killpg(worker.pid, signal.SIGKILL)
    first.kill()
    second.kill()

    assert (LEADS in first.log) != (LEADS in second.log), "both workers scheduled"
    assert_each_due_time_once_without_gaps(due_times())
    row = ScheduleState.objects.get(queue="scheduled", name="record_due")
    assert row.last_due_at == max(due_times())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_kill_9_of_the_scheduling_worker_hands_scheduling_over_without_a_double(
    worker_process,
):
    leader = worker_process(queue=QUEUE, threads=2)
    leader.wait_for_log(LEADS)
    follower = worker_process(queue=QUEUE, threads=2)
    follower.wait_for_log("this worker enqueues them whenever no other worker")
    wait_until(lambda: Effect.objects.count() >= 3, 30)

    assert leader.kill() == -signal.SIGKILL
    killed_at = datetime.datetime.now(datetime.UTC)
    follower.wait_for_log(LEADS, timeout=30)
    took_over = datetime.datetime.now(datetime.UTC) - killed_at
    before = Effect.objects.count()
    wait_until(lambda: Effect.objects.count() >= before + 4, 30)
    follower.kill()

    assert follower.log.count(LEADS) == 1
    assert took_over < datetime.timedelta(seconds=15)
    assert_each_due_time_once_without_gaps(due_times())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_killed_again_and_again_enqueue_each_due_time_once(worker_process):
    # Each new worker takes over from the dead one at a random point of its rounds.
    for _ in range(5):
        worker = worker_process(queue=QUEUE, threads=1)
        worker.wait_for_log(LEADS)
        target = Effect.objects.count() + 2
        wait_until(lambda t=target: Effect.objects.count() >= t, 30)
        worker.kill()

    assert Effect.objects.count() >= 10
    assert_each_due_time_once_without_gaps(due_times())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_with_no_scheduler_runs_jobs_but_does_not_schedule(worker_process):
    from tests.queues import scheduled_queue

    job = scheduled_queue.enqueue("record_due")
    worker = worker_process("--no-scheduler", queue=QUEUE, threads=1)
    wait_until(lambda: Effect.objects.filter(job_id=job.id).exists(), 30)
    worker.kill()

    assert not ScheduleState.objects.exists()
    assert LEADS not in worker.log
    assert Effect.objects.count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_scheduling_connection_is_named_for_the_dashboard(worker_process):
    worker = worker_process(queue=QUEUE, threads=1)
    worker.wait_for_log(LEADS)

    names = wait_until(scheduler_connections, 10)

    assert names == [n for n in names if f":{worker.pid}:scheduler" in n]
    worker.kill()


def private_effects(server: PrivateServer) -> list[datetime.datetime]:
    try:
        rows = server.query("SELECT note FROM testapp_effect ORDER BY note")
    except driver.OperationalError:  # restarting
        return []
    return [datetime.datetime.fromisoformat(row[0]) for row in rows]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_postgresql_restart_under_the_scheduling_worker_enqueues_each_due_time_once(
    private_server,  # noqa: F811
    worker_process,
):
    worker = worker_process(
        queue=QUEUE, threads=2, database=private_server.url("dpq_restart")
    )
    worker.wait_for_log(LEADS)
    wait_until(lambda: len(private_effects(private_server)) >= 3, 30)

    private_server.restart()
    worker.wait_for_log(LEADS, timeout=60, count=2)
    after = len(private_effects(private_server))
    wait_until(lambda: len(private_effects(private_server)) >= after + 3, 30)
    worker.kill()

    assert "lost its database connection" in worker.log
    assert_each_due_time_once_without_gaps(private_effects(private_server))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_original_scheduler_commands_enqueue_each_due_time_once_across_a_kill_9(
    worker_process,
):
    # dpq_scheduler's Scheduler, as the original's users run it, beside a plain worker.
    worker_process("--no-scheduler", queue=QUEUE, threads=2)
    first = worker_process(queue=None, threads=None, command="seed_scheduler")
    second = worker_process(queue=None, threads=None, command="seed_scheduler")
    wait_until(lambda: LEADS in first.log + second.log, 30)
    leader, follower = (first, second) if LEADS in first.log else (second, first)
    wait_until(lambda: Effect.objects.count() >= 3, 30)

    leader.kill()
    follower.wait_for_log(LEADS, timeout=30)
    before = Effect.objects.count()
    wait_until(lambda: Effect.objects.count() >= before + 3, 30)
    follower.kill()

    assert_each_due_time_once_without_gaps(due_times())
