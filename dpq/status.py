"""The queue as an operator watches it: counts per queue and state, workers, schedules.

``read_status()`` runs the statements of ``dpq.sql.status`` (and pgrowlocks, when it is cheap
enough) and returns plain data; ``manage.py dpq_status`` prints it and the metrics collector
(dpq.metrics.collector) exports it. Nothing here writes or takes a lock on the job table.

Running jobs are known two ways. With the pgrowlocks extension installed and a job table
of at most ``PGROWLOCKS_ROW_LIMIT`` rows (the planner's estimate), from the row locks: exact,
with the connection that holds each job. Otherwise from pg_stat_activity: a worker thread's
connection inside a transaction is a claim being run (one job, or a --batch of them).
"""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction

from dpq import pauses, sql

# Counts stop here (one more row is read, to tell "more than"): a count is an index walk of
# at most this many entries, however big the table. The DPQ_COUNT_LIMIT setting changes it.
DEFAULT_COUNT_LIMIT = 100_000
# pgrowlocks reads the whole table: above this many rows running jobs come from connections.
PGROWLOCKS_ROW_LIMIT = 1_000_000


def count_limit() -> int:
    return int(getattr(settings, "DPQ_COUNT_LIMIT", DEFAULT_COUNT_LIMIT))


@dataclass
class QueueStatus:
    """One queue's jobs by state. A count above ``limit`` means "more than ``limit``"."""

    name: str
    queued: int = 0
    running: int = 0
    delayed: int = 0
    failed: int = 0
    oldest_queued_at: datetime.datetime | None = None
    oldest_queued_seconds: float | None = None
    limit: int = DEFAULT_COUNT_LIMIT

    def more_than(self, state: str) -> bool:
        return getattr(self, state) > self.limit


@dataclass
class WorkerThread:
    role: str  # t1, t2 ... (job threads), listen, scheduler, starts, main
    pid: int  # the server process of the connection
    state: str | None
    in_transaction_seconds: float | None
    jobs: list[str] = field(default_factory=list)  # "id task" of the jobs it holds

    @property
    def is_busy(self) -> bool:
        return self.role.startswith("t") and self.in_transaction_seconds is not None


@dataclass
class WorkerProcess:
    """One worker process, from its connections' application_name (dpq:<queue>:<host>:<pid>:<role>)."""

    queue: str
    host: str
    pid: int
    client_addr: str | None
    started_at: datetime.datetime | None
    connections: list[WorkerThread] = field(default_factory=list)

    @property
    def threads(self) -> int:
        return sum(1 for c in self.connections if _is_job_thread(c.role))

    @property
    def busy(self) -> int:
        return sum(1 for c in self.connections if _is_job_thread(c.role) and c.is_busy)

    @property
    def roles(self) -> list[str]:
        return sorted({c.role for c in self.connections if not _is_job_thread(c.role)})


@dataclass
class ScheduleStatus:
    queue: str
    name: str
    paused: bool
    next_due_at: datetime.datetime | None
    lag_seconds: float | None


@dataclass
class Status:
    queues: list[QueueStatus]
    workers: list[WorkerProcess]
    schedules: list[ScheduleStatus]
    # Where running jobs come from: "row locks" (pgrowlocks) or "connections".
    running_source: str
    limit: int
    read_at: datetime.datetime
    # Queues paused with dpq.pause_queue() (paused schedules are in ``schedules``).
    paused_queues: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for process, worker in zip(data["workers"], self.workers, strict=True):
            process.update(
                threads=worker.threads, busy=worker.busy, other_connections=worker.roles
            )
        return _jsonable(data)


def _is_job_thread(role: str) -> bool:
    return role[:1] == "t" and role[1:].isdigit()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def split_application_name(name: str) -> tuple[str, str, int, str] | None:
    """(queue, host, pid, role) of a dpq connection's name; a queue may contain colons."""
    parts = name.split(":")
    if len(parts) < 5 or parts[0] != "dpq" or not parts[-2].isdigit():
        return None
    return ":".join(parts[1:-3]), parts[-3], int(parts[-2]), parts[-1]


def read_running_locks(using: str, job_table: str) -> list[tuple] | None:
    """RUNNING_JOBS rows when pgrowlocks is installed and the table small enough, else None."""
    installed = sql.fetch_one(using, sql.PGROWLOCKS_STATUS)[0]
    if not installed:
        return None
    estimate = sql.fetch_one(using, sql.JOB_TABLE_ESTIMATE, {"table_name": job_table})[
        0
    ]
    if estimate > PGROWLOCKS_ROW_LIMIT:
        return None
    try:
        # A savepoint: a refused call leaves the caller's transaction usable.
        with transaction.atomic(using=using):
            return sql.fetch_all(
                using, sql.RUNNING_JOBS, {"table_name": job_table}, job_table=job_table
            )
    except DatabaseError:
        return None


def read_workers(
    using: str, locks: list[tuple] | None, starts: list[tuple]
) -> list[WorkerProcess]:
    """The worker processes connected now, each connection with the jobs it holds."""
    held: dict[int, list[str]] = {}
    for row in locks or ():
        if row[5] is not None:
            held.setdefault(row[5], []).append(f"{row[0]} {row[2]}")
    # Start records name the process (its starts connection), not the thread.
    started: dict[tuple[str, int], list[str]] = {}
    if locks is None:
        for job_id, task, worker, _ in starts:
            parsed = split_application_name(worker or "")
            if parsed is not None:
                started.setdefault((parsed[1], parsed[2]), []).append(
                    f"{job_id} {task or '?'}"
                )
    processes: dict[tuple[str, str, int], WorkerProcess] = {}
    now = None
    for row in sql.fetch_all(using, sql.WORKER_CONNECTIONS):
        pid, name, client_addr, backend_start, xact_start, state = row[:6]
        parsed = split_application_name(name)
        if parsed is None:
            continue
        queue, host, process_id, role = parsed
        if now is None:
            now = sql.fetch_one(using, sql.DATABASE_PING)[1]
        process = processes.setdefault(
            (queue, host, process_id),
            WorkerProcess(queue, host, process_id, client_addr, backend_start),
        )
        if backend_start is not None and (
            process.started_at is None or backend_start < process.started_at
        ):
            process.started_at = backend_start
        seconds = (
            None
            if xact_start is None or state == "idle"
            else max(0.0, (now - xact_start).total_seconds())
        )
        process.connections.append(
            WorkerThread(role, pid, state, seconds, held.get(pid, []))
        )
    for (host, process_id), jobs in started.items():
        for process in processes.values():
            if (process.host, process.pid) == (host, process_id):
                process.connections.append(
                    WorkerThread("starts", 0, "running alone", None, jobs)
                )
                break
    return sorted(processes.values(), key=lambda p: (p.queue, p.host, p.pid))


def read_status(
    using: str = "default",
    job_table: str = "dpq_job",
    *,
    limit: int | None = None,
    workers: bool = True,
) -> Status:
    """Read the queues' counts, the workers and the schedules (a handful of statements)."""
    with transaction.atomic(using=using):
        sql.execute(using, sql.SET_LOCAL_NO_JIT)
        return _read_status(
            using, job_table, count_limit() if limit is None else limit, workers
        )


def _read_status(using: str, job_table: str, limit: int, workers: bool) -> Status:
    locks = read_running_locks(using, job_table)
    running_ids = sorted({row[0] for row in locks}) if locks is not None else []
    rows = sql.fetch_all(
        using,
        sql.QUEUE_COUNTS,
        {"count_limit": limit + 1, "running_ids": running_ids},
        job_table=job_table,
    )
    queues: dict[str, QueueStatus] = {}
    read_at = None
    for name, queued, delayed, failed, oldest, now in rows:
        read_at = now
        queues[name] = QueueStatus(
            name,
            queued=queued,
            delayed=delayed,
            failed=failed,
            oldest_queued_at=oldest,
            oldest_queued_seconds=None
            if oldest is None
            else max(0.0, (now - oldest).total_seconds()),
            limit=limit,
        )
    starts = sql.fetch_all(using, sql.RUNNING_STARTS, job_table=job_table)
    processes = read_workers(using, locks, starts) if workers or locks is None else []
    if locks is not None:
        source = "row locks"
        for _job_id, queue, _task, row_state, *_ in locks:
            status = queues.setdefault(queue, QueueStatus(queue, limit=limit))
            status.running += 1
            # The counts saw the locked row too (its claim is not committed).
            if row_state in ("queued", "delayed") and not status.more_than(row_state):
                setattr(status, row_state, max(0, getattr(status, row_state) - 1))
    else:
        source = "connections"
        for process in processes:
            status = queues.setdefault(
                process.queue, QueueStatus(process.queue, limit=limit)
            )
            status.running += process.busy
        for status in queues.values():
            if not status.more_than("queued"):
                status.queued = max(0, status.queued - status.running)
    schedules = [
        ScheduleStatus(*row)
        for row in sql.fetch_all(using, sql.SCHEDULE_LAG, job_table=job_table)
    ]
    if read_at is None:
        read_at = sql.fetch_one(using, sql.DATABASE_PING)[1]
    return Status(
        queues=[queues[name] for name in sorted(queues)],
        workers=processes if workers else [],
        schedules=schedules,
        running_source=source,
        limit=limit,
        read_at=read_at,
        paused_queues=sorted(pauses.paused_queues(using=using)),
    )
