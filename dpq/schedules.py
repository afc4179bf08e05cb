"""Periodic jobs: what a schedule is and when it is due. Pure functions, no database.

A queue's ``schedules={...}`` maps a task name to a cron expression, a ``timedelta`` or a
function ``fn(previous_due) -> next_due``, or to a ``Schedule`` that carries more. They are
checked when the queue is built (``compile_schedules``); dpq/scheduler.py enqueues them.
No model is imported here: ``dpq.Schedule`` must be importable before the apps are ready.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cronsim import CronSim, CronSimError
from django.conf import settings

UTC = datetime.UTC
# Enqueue one job for the latest missed due time after downtime (the default), or one per
# missed due time (the original package's schedule functions did that).
MISSED_ONCE = "once"
MISSED_ALL = "all"
MISSED_CHOICES = (MISSED_ONCE, MISSED_ALL)
# cronsim refuses these aliases; they stand for plain five-field expressions.
CRON_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
CRON_FIELDS = "minute hour day-of-month month day-of-week"
# A function schedule after a long downtime is followed this many steps per round at most,
# so one schedule cannot hold the scheduler up; the next round goes on from there.
MAX_FUNCTION_STEPS = 10_000

Rule = Callable[[datetime.datetime], datetime.datetime]


class ScheduleError(ValueError):
    """A schedule's function returned something that is not a later, aware datetime."""


@dataclass(frozen=True)
class Schedule:
    """When a task runs (``when``), and the job it gets each time.

    ``when`` is a cron expression (five fields, or @hourly, @daily, @weekly, @monthly), a
    ``timedelta`` (every N, counted from the previous due time) or a function taking the
    previous due time and returning the next. Cron expressions and the function's argument
    are in ``timezone`` (default: settings.TIME_ZONE). ``missed`` says what happens to due
    times that passed while no worker scheduled: "once" enqueues one job for the latest of
    them, "all" one job per due time.
    """

    when: str | datetime.timedelta | Rule
    args: Any = None
    priority: int | None = None
    timezone: str | datetime.tzinfo | None = None
    missed: str = MISSED_ONCE


@dataclass(frozen=True)
class Due:
    """One job to enqueue: due at ``due_at``; the schedule then waits for ``next_due_at``."""

    due_at: datetime.datetime
    next_due_at: datetime.datetime
    skipped_until: datetime.datetime | None = None  # the first missed due time, if any


class CompiledSchedule:
    """A checked schedule of one task: computes its due times, always as aware UTC datetimes."""

    def __init__(self, name: str, schedule: Schedule, *, args: Any = None) -> None:
        self.name = name
        self.schedule = schedule
        self.args = {} if args is None else args
        self.priority = schedule.priority
        self.missed = schedule.missed
        self._timezone = _parse_timezone(schedule.timezone)
        when = schedule.when
        self.cron: str | None = None
        self.interval: datetime.timedelta | None = None
        self.function: Rule | None = None
        if isinstance(when, str):
            self.cron = _parse_cron(when)
        elif isinstance(when, datetime.timedelta):
            if when <= datetime.timedelta(0):
                raise ValueError(f"the interval {when!r} must be longer than zero")
            self.interval = when
        elif callable(when):
            self.function = when
        else:
            raise ValueError(
                f"{when!r} is not a cron expression, a timedelta or a function "
                f"taking the previous due time"
            )
        if self.missed not in MISSED_CHOICES:
            raise ValueError(
                f"missed={self.missed!r} is not one of {', '.join(map(repr, MISSED_CHOICES))}"
            )

    def __repr__(self) -> str:
        return f"<CompiledSchedule {self.name!r} {self.expression!r}>"

    @property
    def zone(self) -> datetime.tzinfo:
        """The schedule's time zone; the default is read now, so settings can change."""
        return self._timezone or zoneinfo.ZoneInfo(settings.TIME_ZONE or "UTC")

    @property
    def timezone_name(self) -> str:
        return str(getattr(self.zone, "key", self.zone))

    @property
    def expression(self) -> str:
        """The schedule as a person wrote it, for logs and the dashboard."""
        when = self.schedule.when
        if self.cron is not None:
            return str(when).strip()
        if self.interval is not None:
            return f"every {describe_interval(self.interval)}"
        module = getattr(when, "__module__", "") or ""
        name = getattr(when, "__qualname__", None) or repr(when)
        return f"{module}.{name}" if module else name

    def next_after(self, previous: datetime.datetime) -> datetime.datetime:
        """The first due time strictly after ``previous``."""
        if self.interval is not None:
            return (previous + self.interval).astimezone(UTC)
        if self.cron is not None:
            # cronsim walks wall-clock time in the given zone: a time that a spring-forward
            # skips runs at the next valid one, a fixed time on a fall-back day runs once.
            return next(CronSim(self.cron, previous.astimezone(self.zone))).astimezone(
                UTC
            )
        return self._call_function(previous)

    def latest_until(
        self, now: datetime.datetime, first: datetime.datetime
    ) -> datetime.datetime:
        """The latest due time at or before ``now``, given ``first``, a due time <= ``now``."""
        if self.interval is not None:
            return first + (now - first) // self.interval * self.interval
        if self.cron is not None:
            # reverse=True yields times strictly before its start: start just after now.
            start = (now + datetime.timedelta(microseconds=1)).astimezone(self.zone)
            latest = next(CronSim(self.cron, start, reverse=True)).astimezone(UTC)
            return max(latest, first)
        latest = first
        for _ in range(MAX_FUNCTION_STEPS):
            following = self._call_function(latest)
            if following > now:
                break
            latest = following
        return latest

    def plan(self, last_due: datetime.datetime, now: datetime.datetime) -> Due | None:
        """The job to enqueue now, given the last due time handled; None if nothing is due."""
        first = self.next_after(last_due)
        if first > now:
            return None
        if self.missed == MISSED_ALL:
            return Due(first, self.next_after(first))
        latest = self.latest_until(now, first)
        return Due(latest, self.next_after(latest), first if latest > first else None)

    def _call_function(self, previous: datetime.datetime) -> datetime.datetime:
        function: Rule = self.function  # type: ignore[assignment]  (a function schedule)
        result = function(previous.astimezone(self.zone))
        if not isinstance(result, datetime.datetime) or result.utcoffset() is None:
            raise ScheduleError(
                f"schedule {self.name!r}: {self.expression}({previous.isoformat()}) returned "
                f"{result!r}; it must return an aware datetime (with a time zone)"
            )
        if result <= previous:
            raise ScheduleError(
                f"schedule {self.name!r}: {self.expression}({previous.isoformat()}) returned "
                f"{result.isoformat()}, which is not later; it must return the next due time"
            )
        return result.astimezone(UTC)


def compile_schedules(
    queue_name: str,
    task_names: Mapping[str, object],
    schedules: Mapping[str, object] | None,
) -> dict[str, CompiledSchedule]:
    """Check a queue's ``schedules={...}`` and compile them; raise ValueError naming the bad one."""
    if schedules is None:
        return {}
    if not isinstance(schedules, Mapping):
        raise ValueError(
            f"schedules of queue {queue_name!r} must be a dict of task name -> schedule, "
            f"got {type(schedules).__name__}"
        )
    compiled = {}
    for name, value in schedules.items():
        if name not in task_names:
            known = ", ".join(sorted(map(str, task_names))) or "none"
            raise ValueError(
                f"schedule {name!r} of queue {queue_name!r}: the queue has no task by that "
                f"name (known: {known}); add it to tasks={{...}} or fix the schedule's name"
            )
        schedule = value if isinstance(value, Schedule) else Schedule(value)
        try:
            compiled[name] = CompiledSchedule(name, schedule, args=schedule.args)
        except ValueError as exc:
            raise ValueError(
                f"schedule {name!r} of queue {queue_name!r}: {exc}"
            ) from exc
    return compiled


def describe_interval(interval: datetime.timedelta) -> str:
    """Say a timedelta the way a person does: 5 minutes, 1 day 2 hours, 90 seconds."""
    seconds = interval.total_seconds()
    if seconds != int(seconds):
        return f"{seconds:g} seconds"
    parts = []
    rest = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {unit}" + ("s" if count != 1 else ""))
    return " ".join(parts)


def _parse_cron(expression: str) -> str:
    text = CRON_ALIASES.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"the cron expression {expression!r} has {len(fields)} fields; it needs five "
            f"({CRON_FIELDS}), or one of {', '.join(CRON_ALIASES)}"
        )
    try:
        CronSim(text, datetime.datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(
            f"the cron expression {expression!r} is invalid: {exc} (fields: {CRON_FIELDS})"
        ) from exc
    return text


def _parse_timezone(value: str | datetime.tzinfo | None) -> datetime.tzinfo | None:
    """A zoneinfo zone for a name or a pytz zone (cronsim needs zoneinfo's semantics)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"the time zone {value!r} does not exist; use an IANA name such as "
                f"'Europe/Paris' or 'UTC'"
            ) from None
    if isinstance(value, datetime.tzinfo):
        pytz_name = getattr(value, "zone", None)  # a pytz zone: its IANA name
        return zoneinfo.ZoneInfo(pytz_name) if pytz_name else value
    raise ValueError(
        f"timezone must be a time zone name or a tzinfo, got {type(value).__name__} {value!r}"
    )
