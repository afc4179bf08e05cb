"""The scheduling worker: at any time one connection per queue enqueues its schedules' jobs.

Every ``dpq_worker`` of a queue with schedules runs a ``Scheduler`` in a thread of its own.
They compete for a session-level advisory lock; the one holding it is the leader and enqueues
due jobs, the others try again every TAKEOVER_INTERVAL seconds, so when the leader dies (its
connection closes) another takes over within a few seconds. The lock only saves work: each
due job is inserted in the transaction that advances its schedule's last due time, under that
schedule's row lock, so a second scheduler that got there too finds nothing due.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, transaction

from dpq import sql
from dpq.schedule_store import LOCK_SPACE, Store, lock_key, utc
from dpq.threads import RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY, application_name

if TYPE_CHECKING:
    from dpq.queue import Queue
    from dpq.schedules import CompiledSchedule, Due

logger = logging.getLogger(__name__)

UTC = datetime.UTC
# How often a worker that does not schedule tries to take over: how soon a dead leader's
# schedules run again.
TAKEOVER_INTERVAL = 2.0
# How often the leader reads its schedules even when nothing is due: a pause or resume from
# the dashboard takes effect within this.
RECHECK_INTERVAL = 5.0


class Scheduler:
    """Enqueue the due jobs of ``schedules`` on ``queue`` while holding the scheduler lock.

    Runs on the calling thread's connection to ``queue.using``, which holds the lock for
    as long as it stays open; ``run()`` loops until ``stopping`` is set.
    """

    def __init__(
        self,
        queue: Queue,
        schedules: Mapping[str, CompiledSchedule],
        store: Store,
        *,
        role: str = "scheduler",
    ) -> None:
        self.queue = queue
        self.schedules = dict(schedules)
        self.store = store
        self.role = role
        self.using = queue.using
        # The driver connection the lock was taken on: a new one (Django reconnected) does
        # not hold it.
        self._locked_on: Any = None
        self._set_up: Any = None
        self._reported: dict[str, str] = {}

    @property
    def is_leader(self) -> bool:
        connection = connections[self.using].connection
        return connection is not None and connection is self._locked_on

    def run(self, stopping: threading.Event) -> None:
        """Lead or wait to lead, and enqueue due jobs, until ``stopping`` is set."""
        failures = 0
        try:
            while not stopping.is_set():
                try:
                    wait = self.step()
                    failures = 0
                except DatabaseError as exc:
                    failures += 1
                    wait = min(
                        RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY * 2 ** (failures - 1)
                    )
                    self.handle_error(exc, wait)
                stopping.wait(wait)
        finally:
            self.close()

    def step(self) -> float:
        """Take the lead if free, run a round if leading; return seconds until the next step."""
        self.ensure_connection()
        if not self.is_leader:
            if not self.try_lead():
                return TAKEOVER_INTERVAL
            logger.info(
                "Scheduling queue %r from this worker: %s",
                self.queue.name,
                ", ".join(f"{n} ({s.expression})" for n, s in self.schedules.items()),
                extra={"queue": self.queue.name},
            )
            self.store.declare(self.schedules, self.now())
        return min(self.run_round(), RECHECK_INTERVAL)

    def ensure_connection(self) -> None:
        connection = connections[self.using]
        connection.ensure_connection()
        if self._set_up is not connection.connection:
            name = application_name(self.queue.name, self.role)
            sql.execute(self.using, sql.SET_APPLICATION_NAME, {"name": name})
            self._set_up = connection.connection

    def try_lead(self) -> bool:
        params = {"lock_space": LOCK_SPACE, "lock_key": lock_key(self.store.lock_name)}
        if sql.fetch_one(self.using, sql.TRY_SCHEDULER_LOCK, params)[0]:
            self._locked_on = connections[self.using].connection
            return True
        return False

    def now(self) -> datetime.datetime:
        return utc(sql.fetch_one(self.using, sql.SCHEDULER_NOW)[0])

    def run_round(self) -> float:
        """Enqueue what is due now; return the seconds until the next due time."""
        now = self.now()
        rows = self.store.read()
        if set(self.schedules) - set(rows):
            # Rows deleted meanwhile (by a worker running older code): declare them again.
            self.store.declare(self.schedules, now)
            rows = self.store.read()
        wait = RECHECK_INTERVAL
        for name, schedule in self.schedules.items():
            row = rows[name]
            if row.paused:
                continue
            try:
                due = schedule.plan(row.last_due_at, now) and self.enqueue_due(
                    schedule, now
                )
                following = (
                    due.next_due_at if due else schedule.next_after(row.last_due_at)
                )
            except DatabaseError:
                raise
            except Exception as exc:  # a schedule function's own error: skip it, go on
                self.report(name, exc)
                continue
            self._reported.pop(name, None)
            if due is None and following != row.next_due_at:
                self.store.show_next(name, following)
            wait = min(wait, (following - now).total_seconds())
        return max(0.0, wait)

    def enqueue_due(
        self, schedule: CompiledSchedule, now: datetime.datetime
    ) -> Due | None:
        """Enqueue one due job and record it, in one transaction under the schedule's lock."""
        with transaction.atomic(using=self.using):
            row = self.store.lock(schedule.name)
            due = (
                None
                if row is None or row.paused
                else schedule.plan(row.last_due_at, now)
            )
            if due is None:
                return None  # another scheduler enqueued it, or it was paused meanwhile
            job = self.queue.enqueue(
                schedule.name,
                schedule.args,
                execute_at=due.due_at,
                priority=schedule.priority,
            )
            self.store.record(schedule.name, due, job.id)
        missed = (
            f"; due times from {due.skipped_until.isoformat()} on were missed while no "
            f"worker scheduled, this one job stands for them"
            if due.skipped_until
            else ""
        )
        logger.info(
            "Enqueued job %s (%s), due at %s; next due at %s%s",
            job.id,
            schedule.name,
            due.due_at.isoformat(),
            due.next_due_at.isoformat(),
            missed,
            extra={"job_id": job.id, "task": schedule.name, "queue": self.queue.name},
        )
        return due

    def report(self, name: str, exc: Exception) -> None:
        """Log a schedule's error once, not every round while it lasts."""
        text = f"{type(exc).__name__}: {exc}"
        if self._reported.get(name) != text:
            self._reported[name] = text
            logger.error(
                "Schedule %r of queue %r cannot be computed, skipping it: %s",
                name,
                self.queue.name,
                text,
                exc_info=exc,
                extra={"task": name, "queue": self.queue.name},
            )

    def handle_error(self, exc: DatabaseError, delay: float) -> None:
        connection = connections[self.using]
        try:
            usable = connection.connection is not None and connection.is_usable()
        except DatabaseError:
            usable = False
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if usable:
            # A failed statement (a serialization failure, say): the lock is still held.
            logger.warning(
                "The scheduler of queue %r failed a round (%s); retrying in %.1fs",
                self.queue.name,
                first_line,
                delay,
            )
            return
        logger.warning(
            "The scheduler of queue %r lost its database connection (%s); %sreconnecting "
            "in %.1fs",
            self.queue.name,
            first_line,
            "another worker may take over scheduling; " if self._locked_on else "",
            delay,
        )
        self._locked_on = None
        connection.close()

    def close(self) -> None:
        """Close the connection: that gives the lock up, and another worker takes over."""
        self._locked_on = None
        connections[self.using].close()


class SchedulerThread(threading.Thread):
    """Runs a worker pool's scheduler; an unexpected error stops the pool (exit code 1)."""

    def __init__(self, pool: Any, scheduler: Scheduler) -> None:
        super().__init__(name="dpq-scheduler", daemon=True)
        self.pool = pool
        self.scheduler = scheduler

    def run(self) -> None:
        try:
            self.scheduler.run(self.pool.stopping)
        except BaseException:
            logger.exception("The scheduler thread stopped by an unexpected error")
            self.pool.fail()
