"""The limit: N processes, each with its own driver connection, claiming one job per
transaction with a single statement and committing. No Django, no task call, no bookkeeping:
what PostgreSQL and the driver allow on this machine, measured on the same table.

A second shape, "atomic", sends what an at-least-once worker thread sends for a no-op job
(dpq's prepared claim, then SAVEPOINT, SET CONSTRAINTS ALL IMMEDIATE and RELEASE SAVEPOINT
before the COMMIT), still without Django: what the job's transaction costs on its own, with
no Python of the worker's. What a worker loses beyond it is its own Python.

A third shape, "django", sends the same statements from threads of one process through
Django's public transaction API: ``transaction.atomic()`` around the claim, a nested one
around the (absent) task, the check on a Django cursor. No dpq: the least a worker built
from ``atomic()`` blocks can cost.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

# The claim of the original django-postgres-queue: one statement, one job, the same order
# and locking as dpq's claim (dpq adds the crash-accounting join and a LIMIT parameter).
CLAIM_ONE = """
    DELETE FROM dpq_job WHERE id = (
        SELECT id FROM dpq_job
        WHERE queue = %(queue)s AND failed_at IS NULL AND execute_at <= now()
        ORDER BY priority DESC, execute_at, id
        FOR UPDATE SKIP LOCKED
        LIMIT 1
    ) RETURNING *
"""


SHAPES = ("claim", "atomic", "django")

# A no-op job's statements between an at-least-once worker's claim and its COMMIT: the task's
# savepoint, the deferred-constraint check (dpq.sql.CHECK_DEFERRED_CONSTRAINTS), the release.
AROUND_TASK = (
    "SAVEPOINT dpq_task",
    "SET CONSTRAINTS ALL IMMEDIATE",
    "RELEASE SAVEPOINT dpq_task",
)


def _loop(
    dsn: str,
    queue: str,
    shape: str,
    claim: str,
    prepare: str,
    ready: Any,
    results: Any,
) -> None:
    # Imported here: bench/original.py runs this module's run_processes() where "dpq" is
    # the original package, which has no driver module.
    from dpq import driver

    conn = _connect(driver, dsn)
    around_task = AROUND_TASK if shape == "atomic" else ()
    params = {"queue": queue, "exclude_ids": []}
    try:
        with conn.cursor() as cursor:
            cursor.execute(prepare or "SELECT 1")
        conn.commit()
        ready.wait()
        claimed = 0
        cpu_started = time.process_time()
        first = time.time()
        last = first
        with conn.cursor() as cursor:
            while True:
                # Not in autocommit: the driver sends BEGIN before the claim.
                cursor.execute(claim, params)
                row = cursor.fetchone()
                if row is None:
                    conn.rollback()
                    break
                for statement in around_task:
                    cursor.execute(statement)
                conn.commit()
                claimed += 1
                last = time.time()
        results.put((first, last, claimed, time.process_time() - cpu_started))
    finally:
        conn.close()


def _django_loop(
    queue: str, threads: int, claim: str, prepare: str, ready: Any, results: Any
) -> None:
    """``threads`` threads, each on its own Django connection, draining the queue."""
    # A forked child of the bench, which has Django set up; each thread opens its own
    # connection, and the inherited one is left alone (closing it would end the parent's).
    from django.db import connections, transaction

    from dpq import sql

    connected = threading.Barrier(threads + 1)
    go = threading.Event()
    outcomes: list[tuple[float, float, int]] = []

    def drain_one_connection() -> None:
        connection = connections["default"]
        params = {"queue": queue, "exclude_ids": []}
        with connection.cursor() as cursor:
            cursor.execute(prepare)
        connected.wait()
        go.wait()
        claimed, first = 0, time.time()
        last = first
        try:
            while True:
                with transaction.atomic():
                    with connection.cursor() as cursor:
                        cursor.execute(claim, params)
                        if not cursor.fetchall():
                            break
                    with transaction.atomic():
                        with connection.cursor() as cursor:
                            cursor.execute(sql.CHECK_DEFERRED_CONSTRAINTS)
                claimed += 1
                last = time.time()
        finally:
            connection.close()
        outcomes.append((first, last, claimed))

    workers = [threading.Thread(target=drain_one_connection) for _ in range(threads)]
    for worker in workers:
        worker.start()
    connected.wait()
    ready.wait()
    cpu_started = time.process_time()
    go.set()
    for worker in workers:
        worker.join()
    results.put(
        (
            min(o[0] for o in outcomes),
            max(o[1] for o in outcomes),
            sum(o[2] for o in outcomes),
            time.process_time() - cpu_started,
        )
    )


def _connect(driver: Any, dsn: str) -> Any:
    """A connection of the driver Django uses, binding parameters client-side as Django's
    psycopg 3 backend does by default (server-side binding refuses EXECUTE's parameters)."""
    if driver.is_psycopg3:
        import psycopg

        return psycopg.connect(dsn, cursor_factory=psycopg.ClientCursor)
    return driver.connect(dsn)


def drain(
    dsn: str,
    queue: str,
    connections: int,
    shape: str = "claim",
    dpq_claim: tuple[str, str] = ("", ""),
) -> tuple[float, int, float | None]:
    """Drain the queue with ``connections`` processes; return (seconds, jobs claimed, CPU).

    ``shape`` is one of SHAPES; "atomic" and "django" need ``dpq_claim``, dpq's one-job
    claim as a worker thread sends it: (the PREPARE run once per connection, the EXECUTE).
    "django" runs ``connections`` threads in one process.
    The time runs from the moment all processes are connected and released to the last
    successful claim's commit: connecting and process start-up are left out. CPU is the
    processes' own (user + system, seconds), over the same span.
    """
    prepare, claim = dpq_claim if shape != "claim" else ("", CLAIM_ONE)
    if shape == "django":
        return run_processes(1, _django_loop, (queue, connections, claim, prepare))
    return run_processes(connections, _loop, (dsn, queue, shape, claim, prepare))


def run_processes(
    count: int, loop: Callable[..., None], args: tuple
) -> tuple[float, int, float | None]:
    """Fork ``count`` processes of ``loop(*args, ready, results)``: (seconds, jobs, CPU).

    Each loop waits at the ``ready`` barrier once connected, then puts (first, last, jobs)
    on ``results``, and its CPU seconds if it measures them: the time runs from the release
    to the last job's commit.
    """
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(count + 1)
    results = context.Queue()
    processes = [
        context.Process(target=loop, args=(*args, ready, results)) for _ in range(count)
    ]
    for process in processes:
        process.start()
    ready.wait()
    outcomes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    first = min(o[0] for o in outcomes)
    last = max(o[1] for o in outcomes)
    cpu = sum(o[3] for o in outcomes) if all(len(o) > 3 for o in outcomes) else None
    return last - first, sum(o[2] for o in outcomes), cpu
