"""What a worker process tells the outside every few seconds: its heartbeat, its thread gauges.

Called by the dispatcher loop (dpq/dispatcher.py) on each turn, and by the supervisor's
loop; it does something at most once per HEARTBEAT_INTERVAL. Built only when the worker
runs with --heartbeat-file or --metrics-port; the job threads never call it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from dpq import heartbeat

if TYPE_CHECKING:
    from dpq.supervisor import Supervisor
    from dpq.worker import WorkerPool

logger = logging.getLogger("dpq.worker")


class PoolMonitor:
    """The heartbeat and thread gauges of one worker pool."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.next_at = 0.0
        self.database_ok_at: float | None = None
        self.database_error = ""
        self.metrics = pool.options.metrics_port is not None
        self._server: Any = None

    def start(self) -> None:
        """Count jobs for Prometheus, and serve them unless a supervisor does (--processes)."""
        if not self.metrics:
            return
        from dpq.metrics import worker as metrics

        metrics.count_jobs()
        if self.pool.supervisor_pid is None:
            options = self.pool.options
            self._server = metrics.serve(options.metrics_port, options.metrics_addr)

    def due_in(self) -> float:
        return max(0.0, self.next_at - time.monotonic())

    def tick(self, error: BaseException | None = None) -> None:
        """One turn of the dispatcher loop: ``error`` is the database error it met, if any."""
        if error is None:
            self.database_ok_at = time.time()
            self.database_error = ""
        else:
            self.database_error = (
                str(error).strip().splitlines()[0]
                if str(error).strip()
                else type(error).__name__
            )
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + heartbeat.HEARTBEAT_INTERVAL
        busy, idle = self.pool.thread_states()
        if self.metrics:
            from dpq.metrics import worker as metrics

            metrics.set_threads(self.pool.queue.name, busy, idle)
        path = self.pool.options.heartbeat_file
        if path is None:
            return
        if self.pool.supervisor_pid is not None:
            path = heartbeat.child_path(path, os.getpid())
        beat = heartbeat.Beat(
            pid=os.getpid(),
            host=socket.gethostname(),
            queue=self.pool.queue.name,
            role="worker",
            written_at=time.time(),
            threads=self.pool.options.threads,
            busy=busy,
            idle=idle,
            database_ok_at=self.database_ok_at,
            database_error=self.database_error,
        )
        try:
            heartbeat.write(path, beat)
        except OSError as exc:
            logger.warning("Could not write the heartbeat file %s: %s", path, exc)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        path = self.pool.options.heartbeat_file
        if path is not None:
            if self.pool.supervisor_pid is not None:
                path = heartbeat.child_path(path, os.getpid())
            heartbeat.remove(path)


class SupervisorMonitor:
    """The supervisor's heartbeat: itself and the worker processes it runs."""

    def __init__(self, supervisor: Supervisor, path: str) -> None:
        self.supervisor = supervisor
        self.path = path
        self.next_at = 0.0

    def due_in(self) -> float:
        return max(0.0, self.next_at - time.monotonic())

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + heartbeat.HEARTBEAT_INTERVAL
        # A worker process just started has not written its own file yet.
        children = [
            pid
            for pid, started in self.supervisor.children.items()
            if now - started > heartbeat.HEARTBEAT_INTERVAL * 3
            or os.path.exists(heartbeat.child_path(self.path, pid))
        ]
        beat = heartbeat.Beat(
            pid=os.getpid(),
            host=socket.gethostname(),
            queue=self.supervisor.queue.name,
            role="supervisor",
            written_at=time.time(),
            threads=self.supervisor.options.threads * self.supervisor.options.processes,
            children=sorted(children),
        )
        try:
            heartbeat.write(self.path, beat)
        except OSError as exc:
            logger.warning("Could not write the heartbeat file %s: %s", self.path, exc)

    def child_exited(self, pid: int) -> None:
        heartbeat.remove(heartbeat.child_path(self.path, pid))

    def close(self) -> None:
        heartbeat.remove(self.path)
