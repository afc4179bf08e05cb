"""Throughput history without keeping rows: jobs done and failed per queue per minute.

Each worker process counts its jobs in memory (receivers of job_succeeded and job_failed,
a dict update under a lock) and its dispatcher loop writes the counts every
WRITE_INTERVAL seconds in one statement on its own connection (sql.RECORD_THROUGHPUT),
never one write per job. Now and then it deletes the minutes older than a day
(sql.PRUNE_THROUGHPUT), so the table holds at most 1,440 rows per queue. Counts not yet
written when a process is killed are lost: a few seconds' worth.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connections

from dpq import driver, signals, sql

logger = logging.getLogger("dpq.worker")

WRITE_INTERVAL = 5.0
PRUNE_INTERVAL = 600.0


class ThroughputCounter:
    """This process's counts not written yet: (queue, minute start) -> [done, failed]."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, float], list[int]] = {}

    def add(self, queue: str, done: int, failed: int) -> None:
        minute = time.time() // 60 * 60
        with self._lock:
            counts = self._counts.setdefault((queue, minute), [0, 0])
            counts[0] += done
            counts[1] += failed

    def take(self) -> dict[tuple[str, float], list[int]]:
        with self._lock:
            taken, self._counts = self._counts, {}
        return taken

    def give_back(self, counts: dict[tuple[str, float], list[int]]) -> None:
        """Counts whose write failed: added again, to go with the next write."""
        with self._lock:
            for key, (done, failed) in counts.items():
                mine = self._counts.setdefault(key, [0, 0])
                mine[0] += done
                mine[1] += failed


COUNTER = ThroughputCounter()


def _succeeded(sender: Any, queue: Any, **kwargs: Any) -> None:
    COUNTER.add(queue.name, 1, 0)


def _failed(sender: Any, queue: Any, **kwargs: Any) -> None:
    COUNTER.add(queue.name, 0, 1)


def count_jobs() -> None:
    """Connect the receivers that count (idempotent)."""
    signals.job_succeeded.connect(
        _succeeded, weak=False, dispatch_uid="dpq.throughput.succeeded"
    )
    signals.job_failed.connect(
        _failed, weak=False, dispatch_uid="dpq.throughput.failed"
    )


def writer() -> ThroughputWriter | None:
    """A worker process's writer, counting from now on; None when DPQ_THROUGHPUT is False."""
    if not getattr(settings, "DPQ_THROUGHPUT", True):
        return None
    count_jobs()
    return ThroughputWriter()


class ThroughputWriter:
    """Writes COUNTER every WRITE_INTERVAL seconds from the dispatcher loop, and prunes."""

    def __init__(self) -> None:
        self.next_write = time.monotonic() + WRITE_INTERVAL
        self.next_prune = 0.0

    def due_in(self) -> float:
        return max(0.0, self.next_write - time.monotonic())

    def tick(self, raw: Any, *, force: bool = False) -> None:
        """Write what was counted on ``raw`` (a driver connection in autocommit)."""
        now = time.monotonic()
        if raw is None or (now < self.next_write and not force):
            return
        self.next_write = now + WRITE_INTERVAL
        counts = COUNTER.take()
        try:
            with raw.cursor() as cursor:
                if counts:
                    cursor.execute(sql.render(sql.RECORD_THROUGHPUT), _params(counts))
                if now >= self.next_prune:
                    self.next_prune = now + PRUNE_INTERVAL
                    cursor.execute(sql.render(sql.PRUNE_THROUGHPUT))
        except driver.Error as exc:
            # The dispatcher meets the lost connection itself; the counts wait for it.
            COUNTER.give_back(counts)
            logger.debug("Could not write the throughput counts: %s", exc)

    def flush(self, using: str) -> None:
        """The last write, as the worker stops (its threads are done), on a connection of
        its own: the calling thread's may be inside a transaction of its caller's."""
        counts = COUNTER.take()
        if not counts:
            return
        wrapper = connections[using]
        try:
            raw = wrapper.get_new_connection(wrapper.get_connection_params())
        except driver.Error as exc:
            logger.warning("Could not write the last throughput counts: %s", exc)
            return
        try:
            raw.autocommit = True
            with raw.cursor() as cursor:
                cursor.execute(sql.render(sql.RECORD_THROUGHPUT), _params(counts))
        except driver.Error as exc:
            logger.warning("Could not write the last throughput counts: %s", exc)
        finally:
            raw.close()


def _params(counts: dict[tuple[str, float], list[int]]) -> dict[str, list]:
    keys = sorted(counts)
    return {
        "queues": [queue for queue, _ in keys],
        "minutes": [
            datetime.datetime.fromtimestamp(minute, datetime.UTC) for _, minute in keys
        ],
        "done": [counts[key][0] for key in keys],
        "failed": [counts[key][1] for key in keys],
    }
