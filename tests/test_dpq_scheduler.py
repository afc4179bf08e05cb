"""The original package's dpq_scheduler: its schedule functions, its Scheduler command and
its table, with zoneinfo and pytz zones."""

from __future__ import annotations

import datetime
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest
import pytz
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from dpq.models import Job
from dpq_scheduler.commands import Scheduler
from dpq_scheduler.models import LastScheduledFor
from dpq_scheduler.schedules import combine, every_day_at, every_dow_at, repeater
from tests.queues import scheduled_queue
from tests.testapp.management.commands.seed_scheduler import Command

UTC = datetime.UTC
ZONES = {
    "zoneinfo": lambda name: ZoneInfo(name),
    "pytz": lambda name: pytz.timezone(name),
}


@pytest.fixture(params=sorted(ZONES))
def zone(request):
    """A zone factory: each test runs with zoneinfo zones and with pytz zones."""
    return ZONES[request.param]


def at(zone_name: str, *fields) -> datetime.datetime:
    return datetime.datetime(*fields, tzinfo=ZoneInfo(zone_name))


def test_repeater_adds_its_delta():
    start = datetime.datetime(2019, 1, 1, tzinfo=UTC)

    assert repeater(datetime.timedelta(seconds=5))(start) == start + datetime.timedelta(
        seconds=5
    )


def test_every_day_at_later_today(zone):
    schedule = every_day_at(datetime.time(8), zone("UTC"))

    assert schedule(datetime.datetime(2019, 1, 1, tzinfo=UTC)) == datetime.datetime(
        2019, 1, 1, 8, tzinfo=UTC
    )


def test_every_day_at_tomorrow_once_past(zone):
    schedule = every_day_at(datetime.time(8), zone("UTC"))

    assert schedule(datetime.datetime(2019, 1, 1, 9, tzinfo=UTC)) == datetime.datetime(
        2019, 1, 2, 8, tzinfo=UTC
    )


def test_every_day_at_keeps_local_time_across_a_dst_change(zone):
    schedule = every_day_at(datetime.time(8), zone("America/Denver"))

    following = schedule(at("America/Denver", 2019, 11, 2, 8))

    assert following == at("America/Denver", 2019, 11, 3, 8)
    elapsed = following.astimezone(UTC) - at("America/Denver", 2019, 11, 2, 8)
    assert elapsed == datetime.timedelta(hours=25)


def test_every_day_at_runs_once_on_a_fall_back_day(zone):
    # 01:30 happens twice in Denver on 2019-11-03; it is read in standard time (MST).
    schedule = every_day_at(datetime.time(1, 30), zone("America/Denver"))

    first = schedule(at("America/Denver", 2019, 11, 2, 12))
    second = schedule(first)

    # In UTC: Python never finds a fold=1 zoneinfo time equal to one of another zone.
    assert first.astimezone(UTC) == datetime.datetime(2019, 11, 3, 8, 30, tzinfo=UTC)
    assert second.astimezone(UTC) == datetime.datetime(2019, 11, 4, 8, 30, tzinfo=UTC)


def test_every_day_at_runs_a_skipped_time_in_standard_time_on_a_spring_forward_day(
    zone,
):
    # 02:30 does not exist in Denver on 2019-03-10: 02:30 MST is 03:30 MDT.
    schedule = every_day_at(datetime.time(2, 30), zone("America/Denver"))

    assert schedule(at("America/Denver", 2019, 3, 9, 12)) == datetime.datetime(
        2019, 3, 10, 9, 30, tzinfo=UTC
    )


def test_every_dow_at_later_this_week(zone):
    schedule = every_dow_at(6, datetime.time(8), zone("America/Denver"))

    assert schedule(at("America/Denver", 2019, 11, 2, 8)) == at(
        "America/Denver", 2019, 11, 3, 8
    )


def test_every_dow_at_next_week_once_past(zone):
    schedule = every_dow_at(2, datetime.time(8), zone("America/Denver"))

    assert schedule(at("America/Denver", 2019, 11, 3, 8)) == at(
        "America/Denver", 2019, 11, 6, 8
    )


def test_every_dow_at_the_same_moment_is_next_week(zone):
    schedule = every_dow_at(6, datetime.time(8), zone("America/Denver"))

    assert schedule(at("America/Denver", 2019, 11, 3, 8)) == at(
        "America/Denver", 2019, 11, 10, 8
    )


def test_combine_gives_pytz_and_zoneinfo_the_same_moment():
    for day, time in [
        (datetime.date(2019, 3, 10), datetime.time(2, 30)),  # skipped
        (datetime.date(2019, 11, 3), datetime.time(1, 30)),  # repeated
        (datetime.date(2019, 7, 1), datetime.time(12)),
    ]:
        with_pytz = combine(day, time, pytz.timezone("America/Denver"))
        with_zoneinfo = combine(day, time, ZoneInfo("America/Denver"))
        assert with_pytz.astimezone(UTC) == with_zoneinfo.astimezone(UTC)


def test_schedules_module_works_without_pytz_installed():
    code = (
        "import sys; sys.modules['pytz'] = None\n"
        "import datetime, zoneinfo\n"
        "from dpq_scheduler.schedules import every_day_at\n"
        "tz = zoneinfo.ZoneInfo('Europe/Paris')\n"
        "start = datetime.datetime(2026, 3, 28, 12, tzinfo=tz)\n"
        "print(every_day_at(datetime.time(2, 30), tz)(start).isoformat())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "2026-03-29T03:30:00+02:00"


# --- The Scheduler command -----------------------------------------------------------------


@pytest.fixture
def command():
    command = Command()
    yield command
    command.engine().close()


def move_back(task: str, seconds: float) -> datetime.datetime:
    row = LastScheduledFor.objects.get(task=task)
    row.execute_at -= datetime.timedelta(seconds=seconds)
    row.save()
    return row.execute_at


@pytest.mark.django_db(transaction=True)
def test_scheduler_first_round_records_tasks_from_now_and_enqueues_nothing(command):
    command.one_round()

    assert list(LastScheduledFor.objects.values_list("task", flat=True)) == [
        "record_due"
    ]
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_scheduler_catches_up_run_after_run_after_downtime(command):
    command.one_round()
    last = move_back("record_due", 3.5)

    while command.one_round() == datetime.timedelta(0):
        pass

    due_times = sorted(Job.objects.values_list("execute_at", flat=True))
    assert due_times == [last + datetime.timedelta(seconds=n) for n in (1, 2, 3)]
    assert LastScheduledFor.objects.get().execute_at == due_times[-1]
    assert {job.queue for job in Job.objects.all()} == {scheduled_queue.name}


@pytest.mark.django_db(transaction=True)
def test_scheduler_forgets_tasks_removed_from_its_schedule(command):
    LastScheduledFor.objects.create(task="gone", execute_at=datetime.datetime.now(UTC))

    command.one_round()

    assert list(LastScheduledFor.objects.values_list("task", flat=True)) == [
        "record_due"
    ]


def test_scheduler_refuses_a_task_the_queue_does_not_have():
    class Broken(Scheduler):
        queue = scheduled_queue
        tasks = {"nope": repeater(datetime.timedelta(seconds=1))}

    with pytest.raises(CommandError, match=r"missing from queue: \['nope'\]"):
        Broken().validate_tasks()


@pytest.mark.django_db
def test_last_scheduled_for_table_is_the_originals():
    with connection.cursor() as cursor:
        columns = {
            column.name: column
            for column in connection.introspection.get_table_description(
                cursor, "dpq_scheduler_lastscheduledfor"
            )
        }
        constraints = connection.introspection.get_constraints(
            cursor, "dpq_scheduler_lastscheduledfor"
        )

    assert sorted(columns) == ["execute_at", "task"]
    assert columns["task"].display_size == 255 or columns["task"].internal_size == 255
    assert [c["columns"] for c in constraints.values() if c["primary_key"]] == [
        ["task"]
    ]
    # The original's migration by its own name: a database it migrated has it applied.
    applied = MigrationRecorder(connection).applied_migrations()
    assert ("dpq_scheduler", "0001_initial") in applied
