"""The scheduling engine in this process: rounds, the row lock, leadership, run now, pause."""

from __future__ import annotations

import datetime
import itertools
import threading

import pytest
from django.db import connection

from dpq import schedule_store
from dpq import scheduler as engine
from dpq.models import Job, ScheduleState
from dpq.queue import AtLeastOnceQueue
from dpq.schedules import Schedule
from tests import tasks
from tests.conftest import run_threads, start_thread, wait_until

UTC = datetime.UTC


@pytest.fixture
def scheduled():
    queue = AtLeastOnceQueue(
        tasks=tasks.SCHEDULE_TASKS,
        notify_channel="dpq-tests",
        name="scheduled",
        schedules={
            "record_due": Schedule(
                datetime.timedelta(minutes=10), args={"note": "x"}, priority=7
            ),
            "noop": Schedule("*/5 * * * *", timezone="UTC", missed="all"),
        },
    )
    yield queue
    queue.close()


def make_scheduler(queue) -> engine.Scheduler:
    return engine.Scheduler(queue, queue.schedules, schedule_store.ScheduleTable(queue))


def state(name: str) -> ScheduleState:
    return ScheduleState.objects.get(queue="scheduled", name=name)


def move_last_due(name: str, **ago) -> datetime.datetime:
    """Pretend the schedule's last due time was ``ago`` before now (no clock is patched)."""
    moment = db_now() - datetime.timedelta(**ago)
    ScheduleState.objects.filter(queue="scheduled", name=name).update(
        last_due_at=moment
    )
    return moment


def db_now() -> datetime.datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp() AT TIME ZONE 'UTC'")
        return cursor.fetchone()[0].replace(tzinfo=UTC)


@pytest.mark.django_db
def test_first_round_declares_schedules_from_now_and_enqueues_nothing(scheduled):
    scheduler = make_scheduler(scheduled)
    before = db_now()

    scheduler.step()

    rows = {row.name: row for row in ScheduleState.objects.filter(queue="scheduled")}
    assert sorted(rows) == ["noop", "record_due"]
    record = rows["record_due"]
    assert record.last_due_at >= before
    assert record.next_due_at == record.last_due_at + datetime.timedelta(minutes=10)
    assert (record.expression, record.priority, record.args) == (
        "every 10 minutes",
        7,
        {"note": "x"},
    )
    assert rows["noop"].next_due_at.minute % 5 == 0
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_due_schedule_enqueues_one_job_at_its_due_time_and_advances(scheduled):
    scheduler = make_scheduler(scheduled)
    scheduler.step()
    last = move_last_due("record_due", minutes=12)

    scheduler.run_round()

    job = Job.objects.get()
    due = last + datetime.timedelta(minutes=10)
    assert (job.task, job.queue, job.args, job.priority) == (
        "record_due",
        "scheduled",
        {"note": "x"},
        7,
    )
    assert job.execute_at == due
    row = state("record_due")
    assert (row.last_due_at, row.last_job_id) == (due, job.id)
    assert row.next_due_at == due + datetime.timedelta(minutes=10)
    assert row.last_enqueued_at is not None

    scheduler.run_round()

    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_after_downtime_one_job_stands_for_the_missed_due_times(scheduled):
    scheduler = make_scheduler(scheduled)
    scheduler.step()
    last = move_last_due("record_due", hours=5, minutes=5)

    scheduler.run_round()
    scheduler.run_round()

    job = Job.objects.get()
    assert job.execute_at == last + datetime.timedelta(hours=5)


@pytest.mark.django_db
def test_after_downtime_missed_all_enqueues_each_due_time_once(scheduled):
    scheduler = make_scheduler(scheduled)
    scheduler.step()
    move_last_due("noop", minutes=31)

    for _ in range(10):
        scheduler.run_round()

    due_times = sorted(Job.objects.values_list("execute_at", flat=True))
    assert len(due_times) in (6, 7)  # every 5 minutes of the last 31
    assert {b - a for a, b in itertools.pairwise(due_times)} == {
        datetime.timedelta(minutes=5)
    }


@pytest.mark.django_db
def test_paused_schedule_is_not_enqueued(scheduled):
    scheduler = make_scheduler(scheduled)
    scheduler.step()
    move_last_due("record_due", minutes=12)
    assert schedule_store.set_schedule_paused(state("record_due").pk, paused=True)

    scheduler.run_round()

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_resumed_schedule_starts_again_from_now(scheduled):
    scheduler = make_scheduler(scheduled)
    scheduler.step()
    move_last_due("record_due", hours=3)
    pk = state("record_due").pk
    schedule_store.set_schedule_paused(pk, paused=True)
    before = db_now()

    schedule_store.set_schedule_paused(pk, paused=False)
    scheduler.run_round()

    assert not Job.objects.exists()
    assert state("record_due").last_due_at >= before
    assert not state("record_due").paused


@pytest.mark.django_db
def test_run_now_enqueues_the_schedules_job_and_keeps_its_due_times(scheduled):
    scheduler = make_scheduler(scheduled)
    scheduler.step()
    row = state("record_due")

    result = schedule_store.run_schedule_now(row.pk)

    job = Job.objects.get()
    assert result == schedule_store.RunNow(job.id, "record_due")
    assert (job.task, job.args, job.priority) == ("record_due", {"note": "x"}, 7)
    after = state("record_due")
    assert after.last_job_id == job.id
    assert (after.last_due_at, after.next_due_at) == (row.last_due_at, row.next_due_at)


@pytest.mark.django_db
def test_run_now_of_a_schedule_that_is_gone_returns_none():
    assert schedule_store.run_schedule_now(123456) is None
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_schedules_no_longer_declared_are_forgotten(scheduled):
    make_scheduler(scheduled).step()
    fewer = AtLeastOnceQueue(
        tasks=tasks.SCHEDULE_TASKS,
        name="scheduled",
        schedules={"noop": "*/5 * * * *"},
    )

    schedule_store.ScheduleTable(fewer).declare(fewer.schedules, db_now())

    assert list(ScheduleState.objects.values_list("name", flat=True)) == ["noop"]


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_racing_for_one_due_time_enqueue_it_once(scheduled):
    make_scheduler(scheduled).step()
    for attempt in range(10):
        move_last_due("record_due", minutes=11 + attempt)
        now = db_now()
        barrier = threading.Barrier(2)

        def race(barrier=barrier, now=now):
            scheduler = make_scheduler(scheduled)
            barrier.wait(10)
            return scheduler.enqueue_due(scheduled.schedules["record_due"], now)

        results = run_threads(race, 2)

        assert sum(result is not None for result in results) == 1
        assert Job.objects.count() == attempt + 1
    due_times = list(Job.objects.values_list("execute_at", flat=True))
    assert len(set(due_times)) == 10


@pytest.mark.django_db(transaction=True)
def test_one_scheduler_leads_and_another_takes_over_when_its_connection_closes(
    scheduled,
):
    first_leads = threading.Event()
    release = threading.Event()

    def lead():
        scheduler = make_scheduler(scheduled)
        assert scheduler.try_lead()
        first_leads.set()
        release.wait(30)
        scheduler.close()

    holder = start_thread(lead)
    wait_until(first_leads.is_set, 10)
    second = make_scheduler(scheduled)
    try:
        assert not second.try_lead()
        assert schedule_store.scheduling_workers(["scheduled"]) != {}

        release.set()
        holder.join(10)

        wait_until(second.try_lead, 10)
        assert second.is_leader
    finally:
        release.set()
        second.close()
    assert holder.error is None
