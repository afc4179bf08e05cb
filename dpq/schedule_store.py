"""The stored schedules: their rows in dpq_schedule, the scheduler's lock, operators' controls.

A scheduler (dpq/scheduler.py) reads, locks and advances the rows here; the dashboard runs a
schedule now, pauses it, and asks which worker schedules a queue.
"""

from __future__ import annotations

import datetime
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.db import transaction

from dpq import sql

if TYPE_CHECKING:
    from dpq.queue import Queue
    from dpq.schedules import CompiledSchedule, Due

UTC = datetime.UTC
# The first key of every dpq scheduler lock ("dpqS"); the second is per queue.
LOCK_SPACE = 0x64707153


def lock_key(name: str) -> int:
    """The second key of a scheduler's advisory lock: 31 bits of the name's CRC."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def schedule_lock_name(queue_name: str) -> str:
    return f"dpq_schedule:{queue_name}"


@dataclass(frozen=True)
class ScheduleRow:
    """A schedule's state as stored: the last due time handled, the next one, paused."""

    name: str
    last_due_at: datetime.datetime
    next_due_at: datetime.datetime | None = None
    paused: bool = False


class Store(Protocol):
    """Where a scheduler keeps its schedules' last due times (dpq_schedule, or dpq_scheduler's)."""

    lock_name: str

    def declare(
        self, schedules: Mapping[str, CompiledSchedule], now: datetime.datetime
    ) -> None: ...

    def read(self) -> dict[str, ScheduleRow]: ...

    def lock(self, name: str) -> ScheduleRow | None: ...

    def record(self, name: str, due: Due, job_id: int) -> None: ...

    def show_next(self, name: str, next_due_at: datetime.datetime) -> None: ...


def utc(moment: datetime.datetime | None) -> datetime.datetime | None:
    """A UTC timestamp read with ``AT TIME ZONE 'UTC'`` (naive) as an aware datetime."""
    return None if moment is None else moment.replace(tzinfo=UTC)


class ScheduleTable:
    """The schedules of one queue in dpq_schedule, declared by its code (``schedules={...}``)."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.using = queue.using
        self.lock_name = schedule_lock_name(queue.name)

    def declare(
        self, schedules: Mapping[str, CompiledSchedule], now: datetime.datetime
    ) -> None:
        names = sorted(schedules)
        params = {
            "queue": self.queue.name,
            "channel": self.queue.notify_channel,
            "now": now,
            "names": names,
            "expressions": [schedules[n].expression for n in names],
            "zones": [schedules[n].timezone_name for n in names],
            "args": [json.dumps(schedules[n].args) for n in names],
            "priorities": [schedules[n].priority or 0 for n in names],
        }
        with transaction.atomic(using=self.using):
            sql.execute(self.using, sql.UPSERT_SCHEDULES, params)
            sql.execute(
                self.using,
                sql.DELETE_UNDECLARED_SCHEDULES,
                {"queue": self.queue.name, "names": names},
            )

    def read(self) -> dict[str, ScheduleRow]:
        rows = sql.fetch_all(
            self.using, sql.SCHEDULE_STATES, {"queue": self.queue.name}
        )
        return {
            name: ScheduleRow(name, utc(last), utc(following), paused)
            for name, last, following, paused in rows
        }

    def lock(self, name: str) -> ScheduleRow | None:
        row = sql.fetch_one(
            self.using, sql.LOCK_SCHEDULE, {"queue": self.queue.name, "name": name}
        )
        return None if row is None else ScheduleRow(name, utc(row[0]), paused=row[1])

    def record(self, name: str, due: Due, job_id: int) -> None:
        sql.execute(
            self.using,
            sql.RECORD_SCHEDULED_JOB,
            {
                "queue": self.queue.name,
                "name": name,
                "due_at": due.due_at,
                "next_due_at": due.next_due_at,
                "job_id": job_id,
            },
        )

    def show_next(self, name: str, next_due_at: datetime.datetime) -> None:
        sql.execute(
            self.using,
            sql.SET_SCHEDULE_NEXT_DUE,
            {"queue": self.queue.name, "name": name, "next_due_at": next_due_at},
        )


@dataclass(frozen=True)
class RunNow:
    """What run_schedule_now enqueued."""

    job_id: int
    task: str


def run_schedule_now(schedule_id: int, *, using: str = "default") -> RunNow | None:
    """Enqueue a schedule's job now (its args, priority); None if the schedule is gone.

    Its due times stay as they were: the next scheduled run comes as planned. Listeners
    are notified when the caller's transaction commits (at once in autocommit).
    """
    with transaction.atomic(using=using):
        row = sql.fetch_one(using, sql.RUN_SCHEDULE_NOW, {"id": schedule_id})
        if row is None:
            return None
        job_id, task, channel = row
        if channel:
            sql.execute(using, sql.NOTIFY, {"channel": channel})
    return RunNow(job_id, task)


def set_schedule_paused(
    schedule_id: int, *, paused: bool, using: str = "default"
) -> bool:
    """Pause or resume a schedule; False if it is gone. A resumed one starts from now."""
    row = sql.fetch_one(
        using, sql.SET_SCHEDULE_PAUSED, {"id": schedule_id, "paused": paused}
    )
    return row is not None


def scheduling_workers(
    queue_names: list[str], *, using: str = "default"
) -> dict[str, str]:
    """The application_name of the connection scheduling each queue now (queues with one)."""
    keys = {lock_key(schedule_lock_name(name)): name for name in queue_names}
    rows = sql.fetch_all(
        using,
        sql.SCHEDULING_WORKERS,
        {"lock_space": LOCK_SPACE, "lock_keys": sorted(keys)},
    )
    return {keys[key]: name for key, _pid, name, _addr, _start in rows if key in keys}
