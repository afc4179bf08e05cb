"""An idle worker: pickup latency with LISTEN, its cost to the database, its memory."""

from __future__ import annotations

import os
import statistics
import sys
import time
from urllib.parse import urlsplit, urlunsplit

from django.db import connection

from bench import harness, queues, tasks
from bench.report import Figure, Target
from dpq import driver

SECTION_LATENCY = "latency"
SECTION_IDLE = "idle"
SECTION_MEMORY = "memory"


def wait_for_pool(threads: int, timeout: float = 30) -> None:
    """Wait until the worker's listener and all its threads have connected."""
    ok = harness.wait_until(
        lambda: (
            harness.fetch_all(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                [f"dpq:{queues.NAME}:%"],
            )[0][0]
            >= threads + 1
        ),
        timeout,
    )
    if not ok:
        raise RuntimeError("the worker's connections did not show in pg_stat_activity")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def pickup_run(
    count: int, rate: float, threads: int
) -> tuple[float, float, float, float]:
    """Enqueue ``count`` jobs at ``rate``/s to an idle listening worker.

    Return the p50 and p99 of enqueue → task start, and of enqueue → enqueue's commit
    returned (the floor: no worker can see a job before its commit), in ms.
    """
    harness.reset()
    harness.settle()
    process = harness.start_worker(
        "at_least_once_listen", ["--threads", str(threads), "--delay", "30"]
    )
    try:
        wait_for_pool(threads)
        time.sleep(1)
        queue = queues.at_least_once_listen
        started = time.perf_counter()
        committed: dict[int, float] = {}
        for number in range(count):
            pause = started + number / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            job = queue.enqueue("stamp", {"t": time.time()})
            committed[job.id] = time.time()
        done = harness.wait_until(
            lambda: (
                harness.fetch_all(f"SELECT count(*) FROM {tasks.PICKUP_TABLE}")[0][0]
                >= count
            ),
            60,
        )
        if not done:
            raise RuntimeError("the listening worker did not run every job within 60 s")
    finally:
        harness.stop_worker(process)
    rows = harness.fetch_all(
        f"SELECT job_id, enqueued, started FROM {tasks.PICKUP_TABLE}"
    )
    delays = [(started_at - enqueued) * 1000 for _, enqueued, started_at in rows]
    commits = [(committed[job_id] - enqueued) * 1000 for job_id, enqueued, _ in rows]
    return (
        percentile(delays, 0.5),
        percentile(delays, 0.99),
        percentile(commits, 0.5),
        percentile(commits, 0.99),
    )


def pickup_figures(
    rounds: int, count: int, *, rate: float = 100, threads: int = 4
) -> list[Figure]:
    """Pickup latency p50/p99, beside the enqueue's own commit time (the floor)."""
    runs = []
    for number in range(1, rounds + 1):
        runs.append(pickup_run(count, rate, threads))
        p50, p99, c50, c99 = runs[-1]
        print(
            f"  round {number}/{rounds} pickup: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
            f"(enqueue commit p50 {c50:.2f} ms, p99 {c99:.2f} ms)",
            file=sys.stderr,
            flush=True,
        )
    p50s, p99s, c50s, c99s = (list(column) for column in zip(*runs, strict=True))
    note = (
        f"{count:,} jobs enqueued one by one at {rate:g}/s to an idle --threads {threads} "
        f"worker woken by LISTEN; from time.time() before enqueue() to the task's first "
        f"line; baseline: time.time() before enqueue() to enqueue() returning, i.e. the "
        f"enqueue's own commit, which no worker can beat"
    )
    return [
        Figure(
            SECTION_LATENCY,
            "pickup latency p50 (LISTEN)",
            statistics.median(p50s),
            "ms",
            p50s,
            "enqueue commit p50",
            statistics.median(c50s),
            Target("<=", 5, "value"),
            note=note,
        ),
        Figure(
            SECTION_LATENCY,
            "pickup latency p99 (LISTEN)",
            statistics.median(p99s),
            "ms",
            p99s,
            "enqueue commit p99",
            statistics.median(c99s),
            Target("<=", 25, "value"),
        ),
    ]


def transactions(dsn_admin: str, dbname: str) -> int:
    """Committed + rolled-back transactions of ``dbname`` so far, read from another database
    so that reading them does not count."""
    conn = driver.connect(dsn_admin)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                [dbname],
            )
            return cursor.fetchone()[0]
    finally:
        conn.close()


def worker_transactions(
    dsn_admin: str, dbname: str, seconds: float, args: list[str]
) -> int:
    """Transactions in ``dbname`` from a polling worker's start to its exit, ``seconds`` later.

    Backends report their counts at most once a second while they live, and at exit for
    sure: so the count is taken after the worker (and this process's own connection) closed.
    """
    connection.close()
    time.sleep(0.5)
    before = transactions(dsn_admin, dbname)
    process = harness.start_worker("at_least_once", args)
    try:
        time.sleep(seconds)
    finally:
        harness.stop_worker(process)
    time.sleep(0.5)
    return transactions(dsn_admin, dbname) - before


def idle_figures(
    seconds: float, *, threads: int = 4, delay: float = 1.0
) -> list[Figure]:
    """Queries per thread per --delay that an idle polling worker costs the database.

    pg_stat_statements is not loaded on every server, so this counts transactions in
    pg_stat_database (every statement an idle worker runs is a transaction of its own: a
    claim, or the dispatcher's due-job check in autocommit). Two runs of the worker, one
    ``seconds`` longer than the other: the difference leaves out start-up and shutdown.
    """
    harness.reset()
    harness.settle()
    dbname = connection.settings_dict["NAME"]
    url = urlsplit(os.environ["DATABASE_URL"])
    dsn_admin = urlunsplit(url._replace(path="/postgres"))
    args = ["--threads", str(threads), "--delay", str(delay)]
    short = worker_transactions(dsn_admin, dbname, 2, args)
    long = worker_transactions(dsn_admin, dbname, 2 + seconds, args)
    per_thread = max(0, long - short) / seconds * delay / threads
    return [
        Figure(
            SECTION_IDLE,
            f"idle worker --threads {threads} --delay {delay:g}: queries per thread per delay",
            per_thread,
            "queries",
            [short, long],
            target=Target("<=", 1, "value"),
            note=(
                f"{long} transactions in a {2 + seconds:g} s run of the worker, {short} in a "
                f"2 s run (pg_stat_database xact_commit + xact_rollback)"
            ),
        )
    ]


def memory_figures(warmup: int, jobs: int, options: set[str]) -> list[Figure]:
    """The worker's VmRSS after ``warmup`` jobs and after ``jobs`` more."""
    harness.reset()
    harness.settle()
    args = ["--threads", "8"]
    how = "at-most-once, 8 threads"
    queue_attr = "at_most_once_listen"
    if "--batch" in options:
        args += ["--batch", "100"]
        queue_attr = "at_least_once_listen"
        how = "at-least-once with crash accounting, 8 threads, --batch 100"
    process = harness.start_worker(queue_attr, args)
    queue = getattr(queues, queue_attr)
    chunk = 10_000
    try:
        wait_for_pool(8)

        def drain(count: int) -> None:
            for start in range(0, count, chunk):
                queue.enqueue_many([("noop", {})] * min(chunk, count - start))
            if not harness.wait_until(
                lambda: harness.count_jobs() == 0, 600, every=0.5
            ):
                raise RuntimeError("the worker did not drain the memory run's jobs")

        drain(warmup)
        time.sleep(0.5)
        before = harness.rss_kib(process.pid)
        peak = before
        for start in range(0, jobs, chunk * 2):
            drain(min(chunk * 2, jobs - start))
            peak = max(peak, harness.rss_kib(process.pid))
        time.sleep(0.5)
        after = harness.rss_kib(process.pid)
    finally:
        harness.stop_worker(process)
    return [
        Figure(
            SECTION_MEMORY,
            f"worker RSS after warm-up ({warmup:,} jobs)",
            before / 1024,
            "MiB",
            note=f"{how}; VmRSS of the worker process",
        ),
        Figure(
            SECTION_MEMORY,
            f"worker RSS growth over {jobs:,} more jobs",
            (after - before) / 1024,
            "MiB",
            [before / 1024, peak / 1024, after / 1024],
            target=Target("<", 10, "value"),
            note=f"peak {peak / 1024:.1f} MiB, after {after / 1024:.1f} MiB",
        ),
    ]
