"""The worker's main thread: LISTEN, wake one idle thread per notification or due job, and
follow the queue's pause (dpq/pauses.py).

A mixin of WorkerPool (dpq/worker.py), which owns the threads, the stop event and the
wake-up pipe this loop waits on.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import select
import time
from typing import TYPE_CHECKING, Any

from django.db import connections

from dpq import driver, events, pauses, signals, sql
from dpq.threads import RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY, application_name

if TYPE_CHECKING:
    import threading

    from dpq.monitor import PoolMonitor
    from dpq.queue import Queue
    from dpq.throughput import ThroughputWriter

logger = logging.getLogger("dpq.worker")


def seconds_until(moment: datetime.datetime) -> float:
    """Seconds from now until ``moment``, naive (USE_TZ = False: local time) or aware."""
    # Now in the moment's own kind: a naive one minus an aware one raises TypeError.
    return (moment - datetime.datetime.now(moment.tzinfo)).total_seconds()


class Dispatcher:
    """The dispatcher loop of a WorkerPool."""

    queue: Queue
    listen: bool
    stopping: threading.Event
    supervisor_pid: int | None
    _listener: Any
    _wake_r: int
    _due_hint: float | None
    _running_threads: int
    _lock: threading.Lock
    paused: pauses.Pause | None
    pause_known: threading.Event
    monitor: PoolMonitor | None
    throughput: ThroughputWriter | None

    def dispatch(self) -> None:
        """Wake threads on notifications and when delayed jobs fall due, until stopped."""
        failures = 0
        next_check = 0.0
        next_due: float | None = None
        while not self.stopping.is_set():
            if self.supervisor_pid is not None and os.getppid() != self.supervisor_pid:
                logger.error(
                    "The supervisor process is gone; stopping this worker process"
                )
                self.stop()
                break
            with self._lock:
                if self._running_threads == 0:
                    return
                if self._due_hint is not None:
                    if next_due is None or self._due_hint < next_due:
                        next_due = self._due_hint
                    self._due_hint = None
            now = time.monotonic()
            try:
                if self._listener is None:
                    self._listener = self.connect_listener()
                    failures = 0
                    next_check = 0.0  # read the pause state before waking anyone
                    now = time.monotonic()
                if now >= next_check or (next_due is not None and now >= next_due):
                    has_ready, next_due = self.check_due()
                    next_check = now + self.options.delay
                    if has_ready:
                        self.wake_one()
                timeout = next_check - time.monotonic()
                if next_due is not None:
                    timeout = min(timeout, next_due - time.monotonic())
                if self.monitor is not None:
                    self.monitor.tick()
                    timeout = min(timeout, self.monitor.due_in())
                if self.throughput is not None:
                    self.throughput.tick(self._listener)
                    timeout = min(timeout, self.throughput.due_in())
                self.wait_readable(max(0.0, timeout))
                # Read whether the socket woke us or not: notifications that came in during
                # check_due() have been read off the socket already.
                received = driver.received_notifies(self._listener)
                pause_notices = sum(
                    1 for notice in received if notice.channel == sql.PAUSE_CHANNEL
                )
                count = len(received) - pause_notices
                received.clear()
                if pause_notices:
                    next_check = 0.0  # a queue was paused or resumed: read it now
                if count:
                    logger.debug("Woken by %s notification(s)", count)
                    for _ in range(min(count, self.options.threads)):
                        self.wake_one()
                    next_check = 0.0  # a delayed job may have been added: look again
            except driver.Error as exc:
                failures += 1
                delay = min(
                    RECONNECT_MAX_DELAY, RECONNECT_MIN_DELAY * 2 ** (failures - 1)
                )
                logger.warning(
                    "The listening connection was lost (%s); reconnecting in %.1fs",
                    driver.error_message(exc),
                    delay,
                )
                self.close_listener()
                if self.monitor is not None:
                    self.monitor.tick(exc)
                events.send(self.queue, signals.connection_lost, role="listen", exc=exc)
                self.stopping.wait(delay)

    def wait_readable(self, timeout: float) -> list:
        readable, _, _ = select.select([self._listener, self._wake_r], [], [], timeout)
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 1024)
        return readable

    def connect_listener(self) -> Any:
        """The main thread's own connection: LISTEN, and the due-job checks."""
        wrapper = connections[self.queue.using]
        raw = wrapper.get_new_connection(wrapper.get_connection_params())
        raw.autocommit = True
        with raw.cursor() as cursor:
            name = application_name(self.queue.name, "listen")
            cursor.execute(sql.SET_APPLICATION_NAME, {"name": name})
            if self.listen:
                cursor.execute(sql.listen_statement(self.queue.notify_channel, raw))
            cursor.execute(sql.listen_statement(sql.PAUSE_CHANNEL, raw))
        return raw

    def check_due(self) -> tuple[bool, float | None]:
        """Is a job ready now (never while the queue is paused), and when (monotonic time)
        is the next delayed one due?"""
        statement = sql.render(sql.CHECK_DUE_JOBS, self.queue.job_table)
        with self._listener.cursor() as cursor:
            cursor.execute(sql.render(sql.QUEUE_PAUSE), {"queue": self.queue.name})
            self.note_pause(cursor.fetchone())
            cursor.execute(statement, {"queue": self.queue.name})
            has_ready, seconds = cursor.fetchone()
        if self.paused is not None:
            has_ready = False
        if seconds is None:
            return bool(has_ready), None
        return bool(has_ready), time.monotonic() + max(0.0, seconds)

    def note_pause(self, row: tuple | None) -> None:
        """Record whether the queue is paused; say so when that changes, wake threads on resume."""
        was_paused = self.paused is not None
        self.paused = pauses.Pause(self.queue.name, *row) if row else None
        if self.paused is not None and not was_paused:
            logger.info(
                "Queue %r is paused (since %s%s): not claiming until it is resumed; "
                "running jobs finish",
                self.queue.name,
                self.paused.paused_at.isoformat(sep=" ", timespec="seconds"),
                f", by {self.paused.paused_by}" if self.paused.paused_by else "",
                extra={"queue": self.queue.name},
            )
        elif was_paused and self.paused is None:
            logger.info(
                "Queue %r is resumed: claiming again",
                self.queue.name,
                extra={"queue": self.queue.name},
            )
            for _ in range(self.options.threads):
                self.wake_one()
        self.pause_known.set()

    def close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(driver.Error):
                self._listener.close()
            self._listener = None
