"""What every section needs: the database, fills, worker subprocesses, medians.

Statements here are the bench's own (fills, marks, maintenance); the statements under
test come from dpq.sql, or, for the bare loop, from bench/bare.py.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection

from bench import queues, tasks

ROOT = Path(__file__).resolve().parent.parent


def worker_env() -> dict[str, str]:
    """The environment of every subprocess: bench settings, the repository on the path."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def django_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", *args]


def worker_options() -> set[str]:
    """The long options this checkout's dpq_worker accepts (--processes, --batch ...)."""
    out = subprocess.run(
        django_command("dpq_worker", "--help"),
        env=worker_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {word.rstrip(",=") for word in out.split() if word.startswith("--")}


def execute(statement: str, params: Sequence[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def fetch_all(statement: str, params: Sequence[Any] | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def create_tables() -> None:
    execute(f"CREATE TABLE IF NOT EXISTS {tasks.MARK_TABLE} (name text, t float8)")
    execute(
        f"ALTER TABLE {tasks.MARK_TABLE} ADD COLUMN IF NOT EXISTS cpu float8, "
        "ADD COLUMN IF NOT EXISTS pid integer"
    )
    execute(
        f"CREATE TABLE IF NOT EXISTS {tasks.PICKUP_TABLE} "
        "(job_id bigint, enqueued float8, started float8)"
    )


def reset() -> None:
    """Empty the job table and the bench's own tables (TRUNCATE: fresh files, no bloat)."""
    execute(f"TRUNCATE dpq_job, dpq_jobstart, {tasks.MARK_TABLE}, {tasks.PICKUP_TABLE}")


def settle() -> None:
    """VACUUM ANALYZE and CHECKPOINT, so a timed run starts from the same state."""
    execute("VACUUM ANALYZE dpq_job, dpq_jobstart")
    execute("CHECKPOINT")


def insert_jobs(
    count: int,
    *,
    task: str = "noop",
    queue: str = queues.NAME,
    delay: str | None = None,
    failed: bool = False,
    queues_round_robin: Sequence[str] | None = None,
) -> None:
    """Insert ``count`` jobs with one INSERT ... SELECT generate_series (no Python per row)."""
    names = list(queues_round_robin or [queue])
    execute(
        """
        INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue, attempts,
                             last_error, failed_at)
        SELECT now(), now() + %s::interval, 0, %s, '{}'::jsonb,
               (%s::text[])[1 + i %% cardinality(%s::text[])],
               CASE WHEN %s THEN 3 ELSE 0 END,
               CASE WHEN %s THEN 'RuntimeError: bench' ELSE '' END,
               CASE WHEN %s THEN now() END
        FROM generate_series(1, %s) AS i
        """,
        [delay or "0", task, names, names, failed, failed, failed, count],
    )


def insert_marked_drain(count: int) -> None:
    """``count`` no-op jobs between two marks: the first claimed first, the last claimed last."""
    insert_jobs(count)
    execute(
        """
        INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue)
        VALUES (now(), now(), 1, 'mark', '{"name": "first"}', %s),
               (now(), now(), -1, 'mark', '{"name": "last"}', %s)
        """,
        [queues.NAME, queues.NAME],
    )


def marked_seconds() -> float | None:
    rows = dict(fetch_all(f"SELECT name, t FROM {tasks.MARK_TABLE}"))
    if "first" not in rows or "last" not in rows:
        return None
    return rows["last"] - rows["first"]


def marked_cpu() -> float | None:
    """The worker's CPU seconds between the two marks; None when two processes ran them."""
    rows = {
        name: (cpu, pid)
        for name, cpu, pid in fetch_all(
            f"SELECT name, cpu, pid FROM {tasks.MARK_TABLE}"
        )
    }
    first, last = rows.get("first"), rows.get("last")
    if first is None or last is None or first[1] != last[1]:
        return None
    return last[0] - first[0]


def count_jobs(queue: str = queues.NAME) -> int:
    return fetch_all("SELECT count(*) FROM dpq_job WHERE queue = %s", [queue])[0][0]


def run_worker(
    queue_attr: str,
    args: Sequence[str],
    *,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> float:
    """Run ``dpq_worker bench.queues.<queue_attr> ARGS --burst``; return its wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        django_command("dpq_worker", f"bench.queues.{queue_attr}", *args, "--burst"),
        env={**worker_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"dpq_worker {queue_attr} {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stderr[-3000:]}"
        )
    return elapsed


def start_worker(queue_attr: str, args: Sequence[str]) -> subprocess.Popen:
    """Start a long-running worker (no --burst); the caller stops it with stop_worker()."""
    return subprocess.Popen(
        django_command("dpq_worker", f"bench.queues.{queue_attr}", *args),
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until(
    predicate: Callable[[], bool], timeout: float, *, every: float = 0.1
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def rss_kib(pid: int) -> int:
    """VmRSS of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Samples:
    """Repeated measurements of one figure; the table shows the median."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def interleave(
    rounds: int, cases: dict[str, Callable[[], float | None]]
) -> dict[str, Samples]:
    """Run every case once per round, in the same order each round, and collect samples.

    Interleaving puts each case's samples at the same points of a noisy machine's
    history, so a ratio between two cases compares like with like.
    """
    samples: dict[str, Samples] = {name: Samples([]) for name in cases}
    for number in range(1, rounds + 1):
        for name, case in cases.items():
            value = case()
            if value is not None:
                samples[name].values.append(value)
            print(
                f"  round {number}/{rounds} {name}: "
                + ("skipped" if value is None else f"{value:,.1f}"),
                file=sys.stderr,
                flush=True,
            )
    return {name: s for name, s in samples.items() if s.values}
