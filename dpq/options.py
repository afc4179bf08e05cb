"""A worker's options (what dpq_worker's flags set) and how it names its database in logs."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connections


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs: threads, processes, batches, listening, shutdown and reporting."""

    threads: int = 1
    listen: bool | None = None  # None: listen when the queue has a notify channel
    delay: float = 1.0
    burst: bool = False
    max_jobs: int | None = None
    grace: float = 30.0
    batch: int = 1
    batch_ms: float = 50.0
    processes: int = 1
    scheduler: bool = (
        True  # run the queue's schedules (one worker of the queue at a time)
    )
    # Rewrite this file every few seconds (dpq/heartbeat.py), for dpq_health.
    heartbeat_file: str | None = None
    # Serve Prometheus metrics on this port (dpq/metrics/worker.py).
    metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"


def next_batch_size(size: int, limit: int, ran: int, *, cut_short: bool) -> int:
    """How many jobs a thread's next batch claims, after one of ``size`` that ran ``ran``.

    A batch cut short by --batch-ms gave its other jobs back unrun: the next claims as many
    as ran in time. A batch that finished claims a quarter more, up to --batch.
    """
    if cut_short:
        return max(1, ran)
    return min(limit, size + max(1, size // 4))


def describe_database(using: str) -> str:
    """The database a worker uses, for logs: user@host:port/name, never the password."""
    params = connections[using].settings_dict
    host = params.get("HOST") or "local socket"
    port = f":{params['PORT']}" if params.get("PORT") else ""
    user = f"{params['USER']}@" if params.get("USER") else ""
    return f"{user}{host}{port}/{params.get('NAME')}"
