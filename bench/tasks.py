"""The tasks the benchmarks run: a no-op, and two that leave a timestamp behind."""

from __future__ import annotations

import os
import time
from typing import Any

from django.db import connections

# Tables the bench creates itself (bench/harness.py): no app, no migration to keep.
MARK_TABLE = "bench_mark"
PICKUP_TABLE = "bench_pickup"


def noop(queue: Any, job: Any) -> None:
    return None


def mark(queue: Any, job: Any) -> None:
    """Record when this job started, and the worker process's CPU time then: a drain is
    timed from its first to its last mark."""
    started = time.time()
    with connections[queue.using].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {MARK_TABLE} (name, t, cpu, pid) VALUES (%s, %s, %s, %s)",
            [job.args["name"], started, time.process_time(), os.getpid()],
        )


def stamp(queue: Any, job: Any) -> None:
    """Record the enqueue → start delay: args["t"] is time.time() at enqueue."""
    started = time.time()
    with connections[queue.using].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PICKUP_TABLE} (job_id, enqueued, started) VALUES (%s, %s, %s)",
            [job.id, job.args["t"], started],
        )


TASKS = {"noop": noop, "mark": mark, "stamp": stamp}
