"""Queue depth for Prometheus, read from the database at each scrape (one collector).

``QueueCollector.collect()`` runs one status read (dpq.status.read_status: a handful of
statements, counts capped at DPQ_COUNT_LIMIT + 1) and yields:

- ``dpq_queue_jobs{queue,state}``: queued, running, delayed, failed; a count of
  DPQ_COUNT_LIMIT + 1 means "more than DPQ_COUNT_LIMIT".
- ``dpq_queue_oldest_queued_age_seconds{queue}``: how long the oldest ready job has waited.
- ``dpq_schedule_lag_seconds{queue,schedule}``: how far behind its due time each schedule
  is (0 when on time; paused schedules are left out).
- ``dpq_schedule_paused{queue,schedule}``: 1 for a paused schedule.
- ``dpq_worker_processes{queue}`` and ``dpq_worker_connected_threads{queue,state}``: the
  workers connected to the database now (busy: inside a claim).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dpq.status import read_status

STATES = ("queued", "running", "delayed", "failed")


class QueueCollector:
    """A prometheus-client collector of the queues' state in one database."""

    def __init__(self, using: str = "default", job_table: str | None = None) -> None:
        self.using = using
        self.job_table = job_table

    def describe(self) -> list[Any]:
        # Nothing to describe up front: registering must not query the database.
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from dpq.models import Job

        status = read_status(self.using, self.job_table or Job._meta.db_table)
        jobs = GaugeMetricFamily(
            "dpq_queue_jobs",
            f"Jobs per queue and state (read now; a value of {status.limit + 1} means "
            f"more than {status.limit}).",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "dpq_queue_oldest_queued_age_seconds",
            "Seconds the oldest ready job of each queue has waited (0: none waiting).",
            labels=["queue"],
        )
        for queue in status.queues:
            for state in STATES:
                jobs.add_metric([queue.name, state], getattr(queue, state))
            oldest.add_metric([queue.name], queue.oldest_queued_seconds or 0.0)
        yield jobs
        yield oldest
        lag = GaugeMetricFamily(
            "dpq_schedule_lag_seconds",
            "Seconds each schedule is behind its next due time (0: on time).",
            labels=["queue", "schedule"],
        )
        paused = GaugeMetricFamily(
            "dpq_schedule_paused",
            "1 for a paused schedule, else 0.",
            labels=["queue", "schedule"],
        )
        for schedule in status.schedules:
            paused.add_metric([schedule.queue, schedule.name], int(schedule.paused))
            if schedule.lag_seconds is not None:
                lag.add_metric([schedule.queue, schedule.name], schedule.lag_seconds)
        yield lag
        yield paused
        processes = GaugeMetricFamily(
            "dpq_worker_processes",
            "Worker processes connected to the database, per queue.",
            labels=["queue"],
        )
        threads = GaugeMetricFamily(
            "dpq_worker_connected_threads",
            "Worker threads connected to the database, per queue: busy (inside a "
            "claim) or idle.",
            labels=["queue", "state"],
        )
        by_queue: dict[str, list[int]] = {}
        for process in status.workers:
            counts = by_queue.setdefault(process.queue, [0, 0, 0])
            counts[0] += 1
            counts[1] += process.busy
            counts[2] += process.threads - process.busy
        for queue_name, (count, busy, idle) in sorted(by_queue.items()):
            processes.add_metric([queue_name], count)
            threads.add_metric([queue_name, "busy"], busy)
            threads.add_metric([queue_name, "idle"], idle)
        yield processes
        yield threads
