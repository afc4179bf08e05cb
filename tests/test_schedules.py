"""When schedules are due (pure computation, DST included), and what Queue(...) refuses."""

from __future__ import annotations

import datetime
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest

import dpq
from dpq.exceptions import QueueConfigurationError
from dpq.queue import AtLeastOnceQueue
from dpq.schedules import (
    MAX_FUNCTION_STEPS,
    CompiledSchedule,
    Schedule,
    ScheduleError,
)
from tests import tasks

UTC = datetime.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def compiled(when, **options) -> CompiledSchedule:
    return CompiledSchedule("noop", Schedule(when, **options))


def local(zone, *fields, fold=0) -> datetime.datetime:
    return datetime.datetime(*fields, tzinfo=zone, fold=fold)


def walk(schedule: CompiledSchedule, start: datetime.datetime, count: int) -> list:
    times = []
    moment = start
    for _ in range(count):
        moment = schedule.next_after(moment)
        times.append(moment)
    return times


# --- Cron expressions ---------------------------------------------------------------------


def test_cron_next_after_is_strictly_later():
    daily = compiled("30 2 * * *", timezone="UTC")
    at = local(UTC, 2026, 5, 4, 2, 30)

    assert daily.next_after(at) == local(UTC, 2026, 5, 5, 2, 30)


def test_cron_daily_runs_at_the_next_valid_time_on_a_spring_forward_day():
    # Europe/Berlin skips 02:00-03:00 on 2026-03-29.
    daily = compiled("30 2 * * *", timezone="Europe/Berlin")

    times = walk(daily, local(BERLIN, 2026, 3, 27, 12), 4)

    assert [t.astimezone(BERLIN) for t in times] == [
        local(BERLIN, 2026, 3, 28, 2, 30),
        local(BERLIN, 2026, 3, 29, 3, 0),
        local(BERLIN, 2026, 3, 30, 2, 30),
        local(BERLIN, 2026, 3, 31, 2, 30),
    ]
    assert times[1] == datetime.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_cron_daily_runs_once_on_a_fall_back_day():
    # Europe/Berlin has 02:00-03:00 twice on 2026-10-25.
    daily = compiled("30 2 * * *", timezone="Europe/Berlin")

    times = walk(daily, local(BERLIN, 2026, 10, 23, 12), 4)

    assert [t.astimezone(BERLIN).date().day for t in times] == [24, 25, 26, 27]
    assert times[1] == datetime.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_cron_daily_in_new_york_across_both_changes_of_the_year():
    daily = compiled("30 2 * * *", timezone="America/New_York")

    march = walk(daily, local(NEW_YORK, 2026, 3, 7, 12), 3)
    november = walk(daily, local(NEW_YORK, 2026, 10, 31, 12), 3)

    assert [t.astimezone(NEW_YORK).strftime("%d %H:%M") for t in march] == [
        "08 03:00",
        "09 02:30",
        "10 02:30",
    ]
    assert [t.astimezone(NEW_YORK).strftime("%d %H:%M") for t in november] == [
        "01 02:30",
        "02 02:30",
        "03 02:30",
    ]


def test_cron_hourly_runs_in_both_repeated_hours_of_a_fall_back_day():
    hourly = compiled("0 * * * *", timezone="Europe/Berlin")

    times = walk(hourly, local(BERLIN, 2026, 10, 25, 0, 30), 4)

    # 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET: one hour apart in real time.
    assert [t - times[0] for t in times] == [
        datetime.timedelta(hours=n) for n in range(4)
    ]


def test_cron_is_read_in_the_default_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    daily = compiled("0 9 * * *")

    due = daily.next_after(datetime.datetime(2026, 7, 1, 0, 0, tzinfo=UTC))

    assert due == datetime.datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert daily.timezone_name == "Europe/Berlin"


@pytest.mark.parametrize(
    ("alias", "first"),
    [
        ("@hourly", datetime.datetime(2026, 5, 6, 13, 0, tzinfo=UTC)),
        ("@daily", datetime.datetime(2026, 5, 7, 0, 0, tzinfo=UTC)),
        ("@weekly", datetime.datetime(2026, 5, 10, 0, 0, tzinfo=UTC)),  # a Sunday
        ("@monthly", datetime.datetime(2026, 6, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_cron_aliases(alias, first):
    schedule = compiled(alias, timezone="UTC")

    assert (
        schedule.next_after(datetime.datetime(2026, 5, 6, 12, 5, tzinfo=UTC)) == first
    )
    assert schedule.expression == alias


def test_cron_latest_due_time_at_or_before_now():
    every_five = compiled("*/5 * * * *", timezone="UTC")
    first = datetime.datetime(2026, 5, 6, 10, 5, tzinfo=UTC)

    assert every_five.latest_until(
        datetime.datetime(2026, 5, 6, 12, 7, 30, tzinfo=UTC), first
    ) == datetime.datetime(2026, 5, 6, 12, 5, tzinfo=UTC)
    assert every_five.latest_until(
        datetime.datetime(2026, 5, 6, 12, 5, tzinfo=UTC), first
    ) == datetime.datetime(2026, 5, 6, 12, 5, tzinfo=UTC)


# --- Intervals and functions ---------------------------------------------------------------


def test_interval_counts_real_time_across_a_clock_change():
    hourly = compiled(datetime.timedelta(hours=1), timezone="Europe/Berlin")
    start = local(BERLIN, 2026, 10, 25, 1, 30)

    times = walk(hourly, start, 3)

    assert [t - start for t in times] == [
        datetime.timedelta(hours=n) for n in (1, 2, 3)
    ]
    assert hourly.expression == "every 1 hour"


def test_interval_latest_due_time_is_a_whole_number_of_steps():
    every = compiled(datetime.timedelta(minutes=10))
    first = datetime.datetime(2026, 1, 1, 0, 10, tzinfo=UTC)

    latest = every.latest_until(datetime.datetime(2026, 1, 1, 5, 3, tzinfo=UTC), first)

    assert latest == datetime.datetime(2026, 1, 1, 5, 0, tzinfo=UTC)


def test_function_gets_the_previous_due_time_in_the_schedules_zone():
    seen = []

    def next_noon(previous):
        seen.append(previous.tzinfo)
        return previous + datetime.timedelta(days=1)

    schedule = compiled(next_noon, timezone="Europe/Berlin")
    schedule.next_after(datetime.datetime(2026, 1, 1, 11, tzinfo=UTC))

    assert seen == [BERLIN]
    assert schedule.expression.endswith("next_noon")


def test_function_returning_a_naive_datetime_is_an_error_naming_the_schedule():
    schedule = compiled(lambda previous: previous.replace(tzinfo=None))

    with pytest.raises(ScheduleError, match=r"schedule 'noop'.*aware datetime"):
        schedule.next_after(datetime.datetime(2026, 1, 1, tzinfo=UTC))


def test_function_returning_the_same_time_is_an_error():
    schedule = compiled(lambda previous: previous)

    with pytest.raises(ScheduleError, match="not later"):
        schedule.next_after(datetime.datetime(2026, 1, 1, tzinfo=UTC))


def test_function_latest_due_time_stops_after_a_bounded_number_of_steps():
    every_second = compiled(lambda previous: previous + datetime.timedelta(seconds=1))
    first = datetime.datetime(2026, 1, 1, tzinfo=UTC)

    latest = every_second.latest_until(first + datetime.timedelta(days=30), first)

    assert latest == first + datetime.timedelta(seconds=MAX_FUNCTION_STEPS)


# --- After downtime ------------------------------------------------------------------------


def test_plan_enqueues_nothing_before_the_next_due_time():
    every = compiled(datetime.timedelta(minutes=5))
    last = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    assert every.plan(last, last + datetime.timedelta(minutes=4, seconds=59)) is None


def test_plan_after_downtime_enqueues_once_for_the_latest_missed_time_by_default():
    every = compiled("*/5 * * * *", timezone="UTC")
    last = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    due = every.plan(last, datetime.datetime(2026, 1, 1, 13, 1, tzinfo=UTC))

    assert due.due_at == datetime.datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert due.next_due_at == datetime.datetime(2026, 1, 1, 13, 5, tzinfo=UTC)
    assert due.skipped_until == datetime.datetime(2026, 1, 1, 12, 5, tzinfo=UTC)


def test_plan_after_downtime_with_missed_all_enqueues_the_first_missed_time():
    every = compiled("*/5 * * * *", timezone="UTC", missed="all")
    last = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    due = every.plan(last, datetime.datetime(2026, 1, 1, 13, 1, tzinfo=UTC))

    assert due.due_at == datetime.datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    assert due.next_due_at == datetime.datetime(2026, 1, 1, 12, 10, tzinfo=UTC)
    assert due.skipped_until is None


# --- What Queue(...) refuses ---------------------------------------------------------------


def build(schedules, **options):
    return AtLeastOnceQueue(
        tasks=tasks.TASKS, name="reports", schedules=schedules, **options
    )


@pytest.mark.parametrize(
    ("schedules", "message"),
    [
        (
            {"record": "61 * * * *"},
            r"schedule 'record' of queue 'reports': the cron expression '61 \* \* \* \*' "
            r"is invalid: Bad minute",
        ),
        (
            {"record": "*/5 * * *"},
            r"schedule 'record' of queue 'reports': the cron expression .* has 4 fields; "
            r"it needs five",
        ),
        (
            {"record": "* * * * * *"},
            r"schedule 'record' .* has 6 fields",
        ),
        (
            {"send_mail": "@daily"},
            r"schedule 'send_mail' of queue 'reports': the queue has no task by that name "
            r"\(known: fail, kill_process, noop, record, record_then_fail\)",
        ),
        (
            {"record": Schedule("@daily", timezone="Europe/Atlantis")},
            r"schedule 'record' of queue 'reports': the time zone 'Europe/Atlantis' does "
            r"not exist",
        ),
        (
            {"record": datetime.timedelta(0)},
            r"schedule 'record' .* must be longer than zero",
        ),
        ({"record": 300}, r"schedule 'record' .* 300 is not a cron expression"),
        (
            {"record": Schedule("@daily", missed="never")},
            r"schedule 'record' .* missed='never' is not one of 'once', 'all'",
        ),
        (
            {"record": Schedule("@daily", args={"when": datetime.date(2026, 1, 1)})},
            r"schedule 'record' of queue 'reports': cannot enqueue 'record': args must be "
            r"JSON-serializable",
        ),
        (
            {"record": Schedule("@daily", priority=2**40)},
            r"schedule 'record' .* priority 1099511627776 is out of range",
        ),
    ],
)
def test_queue_refuses_a_bad_schedule_naming_it(schedules, message):
    with pytest.raises(QueueConfigurationError, match=message):
        build(schedules)


def test_queue_compiles_every_kind_of_schedule():
    queue = build(
        {
            "noop": "*/5 * * * *",
            "record": datetime.timedelta(minutes=10),
            "fail": Schedule(lambda prev: prev, args={"a": 1}, priority=5),
        }
    )

    assert sorted(queue.schedules) == ["fail", "noop", "record"]
    assert queue.schedules["fail"].args == {"a": 1}
    assert queue.schedules["noop"].expression == "*/5 * * * *"


def test_schedule_accepts_a_pytz_zone_without_dpq_needing_pytz():
    import pytz

    schedule = compiled("30 2 * * *", timezone=pytz.timezone("Europe/Berlin"))

    assert schedule.next_after(local(BERLIN, 2026, 3, 28, 12)) == local(
        BERLIN, 2026, 3, 29, 3, 0
    )
    assert schedule.timezone_name == "Europe/Berlin"


def test_dpq_schedule_is_importable_without_importing_models():
    code = (
        "import sys, dpq\n"
        "assert 'dpq.schedules' not in sys.modules\n"
        "from dpq import Schedule\n"
        "assert Schedule.__module__ == 'dpq.schedules'\n"
        "assert 'dpq.models' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert dpq.Schedule is Schedule
