"""``Scheduler``, the original package's management-command base class, on dpq's engine.

Subclass it and set ``queue`` and ``tasks`` (task name -> schedule function)::

    class Command(Scheduler):
        queue = queue
        tasks = {"send_digest": every_day_at(datetime.time(8), ZoneInfo("Europe/Paris"))}

``manage.py <name>`` then enqueues each due time once, like a queue's ``schedules={...}``:
one such command schedules at a time (the others wait to take over), and each due job is
inserted in the transaction that advances its task's ``LastScheduledFor`` row. As in the
original, a new task first runs at its next due time, and after downtime every missed due
time is enqueued, one after the other.
"""

from __future__ import annotations

import datetime
import logging
import signal
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from dpq import sql
from dpq.schedule_store import ScheduleRow, utc
from dpq.scheduler import Scheduler as Engine
from dpq.schedules import MISSED_ALL, CompiledSchedule, Schedule

if TYPE_CHECKING:
    from dpq.queue import Queue
    from dpq.schedules import Due, Rule

logger = logging.getLogger(__name__)


class LastScheduledTable:
    """dpq_scheduler's table as the engine's store: one row per task, for every queue."""

    lock_name = "dpq_scheduler"

    def __init__(self, using: str) -> None:
        self.using = using

    def declare(
        self, schedules: Mapping[str, CompiledSchedule], now: datetime.datetime
    ) -> None:
        names = sorted(schedules)
        with transaction.atomic(using=self.using):
            sql.execute(
                self.using, sql.INSERT_LAST_SCHEDULED, {"names": names, "now": now}
            )
            sql.execute(
                self.using, sql.DELETE_UNDECLARED_LAST_SCHEDULED, {"names": names}
            )

    def read(self) -> dict[str, ScheduleRow]:
        rows = sql.fetch_all(self.using, sql.LAST_SCHEDULED_STATES)
        return {task: ScheduleRow(task, utc(execute_at)) for task, execute_at in rows}

    def lock(self, name: str) -> ScheduleRow | None:
        row = sql.fetch_one(self.using, sql.LOCK_LAST_SCHEDULED, {"name": name})
        return None if row is None else ScheduleRow(name, utc(row[0]))

    def record(self, name: str, due: Due, job_id: int) -> None:
        sql.execute(
            self.using, sql.RECORD_LAST_SCHEDULED, {"name": name, "due_at": due.due_at}
        )

    def show_next(self, name: str, next_due_at: datetime.datetime) -> None:
        """The original's table has no column for it."""


class Scheduler(BaseCommand):
    help = "Enqueue the jobs of the tasks' schedules when they are due."

    # Task name -> schedule function (takes the previous due time, returns the next one).
    tasks: Mapping[str, Rule] | None = None
    # The queue to enqueue in.
    queue: Queue | None = None
    logger = logger

    def handle(self, *args: Any, **options: Any) -> None:
        self.validate_tasks()
        stopping = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: stopping.set())
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.engine().run(stopping)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def validate_tasks(self) -> None:
        if self.queue is None or self.tasks is None:
            raise CommandError(
                f"{type(self).__module__}.Command needs `queue = <your Queue>` and "
                f"`tasks = {{task name: schedule function}}` on the class"
            )
        missing = sorted(set(self.tasks) - set(self.queue.tasks))
        if missing:
            raise CommandError(
                f"Tasks in schedule but missing from queue: {missing}; queue "
                f"{self.queue.name!r} has {sorted(self.queue.tasks)}"
            )
        for name, function in self.tasks.items():
            if not callable(function):
                raise CommandError(
                    f"schedule of {name!r} is {function!r}, not a function taking the "
                    f"previous due time"
                )

    def engine(self) -> Engine:
        """dpq's scheduling engine on the original's table, for this thread's connection."""
        if getattr(self, "_engine", None) is None:
            schedules = {
                # UTC and one job per missed due time: what the original passed and did.
                name: CompiledSchedule(
                    name, Schedule(function, timezone="UTC", missed=MISSED_ALL)
                )
                for name, function in (self.tasks or {}).items()
            }
            self._engine = Engine(
                self.queue, schedules, LastScheduledTable(self.queue.using)
            )
        return self._engine

    def one_round(self) -> datetime.timedelta:
        """Enqueue what is due (once this command schedules); return how long to wait."""
        return datetime.timedelta(seconds=self.engine().step())
