"""What a worker counts for Prometheus (``dpq_worker --metrics-port N``), and where it serves it.

The counts come from dpq's signals (job_succeeded, job_failed, job_crashed,
connection_lost): a worker without --metrics-port connects no receiver, and its claim path
runs as if this module did not exist. The thread gauges are set by the worker's dispatcher
loop every few seconds (dpq.monitor), never by a job thread.

One process serves its own metrics from prometheus-client's HTTP server thread. Under
``--processes`` the supervisor serves them for every worker process in one endpoint, with
prometheus-client's multiprocess mode: before it imports prometheus-client it creates a
private directory (``dpq-metrics-*`` under the system's temporary directory) and names it
in PROMETHEUS_MULTIPROC_DIR, the worker processes it forks write their values there, and
the supervisor removes it when it stops. A PROMETHEUS_MULTIPROC_DIR already set is used
as it is, and left in place.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from dpq import signals
from dpq.metrics import MISSING

logger = logging.getLogger("dpq.worker")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Job durations: from a no-op job's milliseconds to a report's minutes.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    float("inf"),
)


@dataclass
class Instruments:
    jobs: Any
    duration: Any
    threads: Any
    reconnects: Any


_instruments: Instruments | None = None
_lock = threading.Lock()


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImproperlyConfigured(MISSING) from exc
    return prometheus_client


def instruments() -> Instruments:
    """This process's dpq metrics, created (and registered) on first use."""
    global _instruments
    with _lock:
        if _instruments is None:
            prometheus = _prometheus()
            _instruments = Instruments(
                jobs=prometheus.Counter(
                    "dpq_jobs",
                    "Jobs run by this worker, by outcome: succeeded, failed (kept as "
                    "failed), retried (failed, to run again), crashed (given back after "
                    "a worker died running it).",
                    ["queue", "task", "outcome"],
                ),
                duration=prometheus.Histogram(
                    "dpq_job_duration_seconds",
                    "How long jobs' tasks ran, succeeded or failed.",
                    ["queue", "task"],
                    buckets=DURATION_BUCKETS,
                ),
                threads=prometheus.Gauge(
                    "dpq_worker_threads",
                    "Worker threads, by state: busy (claiming or running a job) or idle.",
                    ["queue", "state"],
                    multiprocess_mode="livesum",
                ),
                reconnects=prometheus.Counter(
                    "dpq_worker_reconnects",
                    "Database connections this worker lost and opened again, by "
                    "connection: a job thread (thread) or the listening one (listen).",
                    ["queue", "connection"],
                ),
            )
        return _instruments


def _succeeded(
    sender: Any, queue: Any, job: Any, duration: float, **kwargs: Any
) -> None:
    meters = instruments()
    meters.jobs.labels(queue.name, job.task, "succeeded").inc()
    meters.duration.labels(queue.name, job.task).observe(duration)


def _failed(
    sender: Any,
    queue: Any,
    job: Any,
    will_retry: bool,
    duration: float = 0.0,
    **kwargs: Any,
) -> None:
    meters = instruments()
    outcome = "retried" if will_retry else "failed"
    meters.jobs.labels(queue.name, job.task, outcome).inc()
    meters.duration.labels(queue.name, job.task).observe(duration)


def _crashed(sender: Any, queue: Any, job: Any, **kwargs: Any) -> None:
    instruments().jobs.labels(queue.name, job.task, "crashed").inc()


def _connection_lost(sender: Any, queue: Any, role: str, **kwargs: Any) -> None:
    kind = "listen" if role == "listen" else "thread"
    instruments().reconnects.labels(queue.name, kind).inc()


RECEIVERS = (
    (signals.job_succeeded, _succeeded),
    (signals.job_failed, _failed),
    (signals.job_crashed, _crashed),
    (signals.connection_lost, _connection_lost),
)


def count_jobs() -> None:
    """Connect the receivers that count jobs and reconnects (idempotent)."""
    instruments()
    for signal, receiver in RECEIVERS:
        signal.connect(
            receiver, weak=False, dispatch_uid=f"dpq.metrics.{receiver.__name__}"
        )


def stop_counting() -> None:
    for signal, receiver in RECEIVERS:
        signal.disconnect(receiver, dispatch_uid=f"dpq.metrics.{receiver.__name__}")


def set_threads(queue_name: str, busy: int, idle: int) -> None:
    threads = instruments().threads
    threads.labels(queue_name, "busy").set(busy)
    threads.labels(queue_name, "idle").set(idle)


def serve(port: int, addr: str = "0.0.0.0") -> Any:
    """Serve this process's metrics (the default registry) on ``addr:port``; the server."""
    prometheus = _prometheus()
    server, _thread = _start_server(prometheus, port, addr)
    logger.info("Serving Prometheus metrics on %s:%s", addr or "*", port)
    return server


def _start_server(prometheus: Any, port: int, addr: str, registry: Any = None) -> Any:
    try:
        if registry is None:
            return prometheus.start_http_server(port, addr)
        return prometheus.start_http_server(port, addr, registry=registry)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}; pick another "
            f"--metrics-port"
        ) from exc


class MultiprocessMetrics:
    """The supervisor's side of --processes metrics: the directory and the one endpoint."""

    def __init__(self, port: int, addr: str = "0.0.0.0") -> None:
        self.own_directory = MULTIPROC_ENV not in os.environ
        if self.own_directory:
            if "prometheus_client" in sys.modules:
                raise ImproperlyConfigured(
                    "--processes with --metrics-port needs prometheus-client's multiprocess "
                    "mode, and prometheus_client was imported before the worker could set "
                    f"{MULTIPROC_ENV}: set {MULTIPROC_ENV} to an empty directory in the "
                    "worker's environment yourself"
                )
            os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="dpq-metrics-")
        self.directory = os.environ[MULTIPROC_ENV]
        prometheus = _prometheus()
        from prometheus_client import multiprocess

        self._multiprocess = multiprocess
        registry = prometheus.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)
        try:
            self.server, _thread = _start_server(prometheus, port, addr, registry)
        except ImproperlyConfigured:
            self.close_directory()
            raise
        logger.info(
            "Serving Prometheus metrics of every worker process on %s:%s (multiprocess "
            "mode, %s)",
            addr or "*",
            port,
            self.directory,
        )

    def after_fork(self) -> None:
        """In a worker process: drop the supervisor's listening socket."""
        self.server.socket.close()

    def process_exited(self, pid: int) -> None:
        """Forget a dead worker process's gauges (its counts stay in the totals)."""
        self._multiprocess.mark_process_dead(pid, self.directory)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.close_directory()

    def close_directory(self) -> None:
        if self.own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)
