"""``--processes P``: fork P worker processes and keep them running.

One Python process runs its threads under one GIL, so a busy pool of short jobs is CPU-bound
in Python long before PostgreSQL is. The supervisor forks P children, each a full worker pool
(its own connections, crash accounting and solo rule), restarts a child that dies and says
how it died, and turns SIGTERM/SIGINT into a warm shutdown of every child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from django.db import connections

from dpq.shutdown import EXIT_MARGIN, STOP_SIGNALS, SignalPipe

if TYPE_CHECKING:
    from collections.abc import Callable

    from dpq.metrics.worker import MultiprocessMetrics
    from dpq.monitor import SupervisorMonitor
    from dpq.options import WorkerOptions
    from dpq.queue import Queue

logger = logging.getLogger(__name__)

# A child that dies sooner than this after its start is restarted after a growing pause,
# so a worker that cannot start does not spin.
QUICK_DEATH_SECONDS = 5.0
MAX_RESTART_PAUSE = 30.0


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(number).name}"
        return f"was killed by signal {number}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    """Forks --processes worker pools and keeps them running until stopped.

    Everything happens in the main loop, one thread: the signal handlers only note signals
    (SIGCHLD too) in a pipe, which the loop waits on.
    """

    def __init__(
        self,
        queue: Queue,
        options: WorkerOptions,
        *,
        on_stop_signal: Callable[[int], bool] | None = None,
    ) -> None:
        self.queue = queue
        self.options = options
        # Asked once per stop signal, here, whether it stops the workers (see run_worker).
        self.on_stop_signal = on_stop_signal
        self.children: dict[int, float] = {}  # pid -> start time
        self.stopping = False
        self.failed = False
        self.signals = 0
        self.quick_deaths = 0
        self.restarts = 0  # worker processes to start again at restart_at
        self.restart_at = 0.0
        self.kill_at: float | None = None  # once stopping: SIGKILL the children left
        self._signal_pipe: SignalPipe | None = None
        # One metrics endpoint for every worker process, and the heartbeat naming them.
        self.metrics: MultiprocessMetrics | None = None
        self.monitor: SupervisorMonitor | None = None

    def run(self) -> int:
        self.install_signal_handlers()
        if self.options.metrics_port is not None:
            from dpq.metrics.worker import MultiprocessMetrics

            self.metrics = MultiprocessMetrics(
                self.options.metrics_port, self.options.metrics_addr
            )
        if self.options.heartbeat_file is not None:
            from dpq.monitor import SupervisorMonitor

            self.monitor = SupervisorMonitor(self, self.options.heartbeat_file)
        try:
            return self.supervise()
        finally:
            if self.metrics is not None:
                self.metrics.close()
            if self.monitor is not None:
                self.monitor.close()

    def supervise(self) -> int:
        logger.info(
            "dpq supervisor started: %s worker processes of %s threads for queue %r",
            self.options.processes,
            self.options.threads,
            self.queue.name,
        )
        for _ in range(self.options.processes):
            self.start_child()
        while self.children or (self.restarts and not self.stopping):
            for signum in self.read_signals(self.next_timeout()):
                if signum in STOP_SIGNALS:
                    self.handle_signal(signum)
            self.reap_children()
            if self.monitor is not None:
                self.monitor.tick()
            now = time.monotonic()
            if self.kill_at is not None and now >= self.kill_at:
                self.kill_children()
            if self.restarts and not self.stopping and now >= self.restart_at:
                for _ in range(self.restarts):
                    self.start_child()
                self.restarts = 0
        logger.info("dpq supervisor stopped")
        return 1 if self.failed else 0

    def install_signal_handlers(self) -> None:
        if self._signal_pipe is None:
            self._signal_pipe = SignalPipe((*STOP_SIGNALS, signal.SIGCHLD))
            self._signal_pipe.install()

    def restore_signal_handlers(self) -> None:
        if self._signal_pipe is not None:
            self._signal_pipe.restore()
            self._signal_pipe.close()
            self._signal_pipe = None

    def read_signals(self, timeout: float | None = 0) -> list[int]:
        """Wait up to ``timeout`` seconds for signals; those noted (SIGCHLD too), in order."""
        if self._signal_pipe is None:
            return []
        return self._signal_pipe.wait(timeout) or []

    def next_timeout(self) -> float | None:
        moments = [] if self.kill_at is None else [self.kill_at]
        if self.restarts and not self.stopping:
            moments.append(self.restart_at)
        if self.monitor is not None:
            moments.append(time.monotonic() + self.monitor.due_in())
        return max(0.0, min(moments) - time.monotonic()) if moments else None

    def handle_signal(self, signum: int) -> None:
        """Forward a stop signal to every worker process: the first a warm stop, then cold."""
        name = signal.Signals(signum).name
        if self.on_stop_signal is not None and not self.on_stop_signal(signum):
            logger.info("Received %s; the worker command asked to go on", name)
            return
        self.signals += 1
        self.stopping = True
        if self.signals == 1:
            logger.info(
                "Received %s: asking %s worker processes to stop",
                name,
                len(self.children),
            )
            self.kill_at = time.monotonic() + self.options.grace + EXIT_MARGIN
        else:
            logger.warning("Received %s again: worker processes exit at once", name)
            self.kill_at = min(
                self.kill_at or float("inf"), time.monotonic() + EXIT_MARGIN
            )
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def kill_children(self) -> None:
        """SIGKILL the worker processes still there long after the stop signal."""
        self.kill_at = None
        logger.error(
            "Worker processes %s have not stopped %ss after the signal (--grace %ss); "
            "killing them: their at-least-once jobs roll back and return to the queue",
            ", ".join(str(pid) for pid in sorted(self.children)),
            self.options.grace + EXIT_MARGIN,
            self.options.grace,
        )
        self.failed = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def reap_children(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except (
                ChildProcessError
            ):  # reaped by someone else: nothing left to wait for
                self.children.clear()
                return
            if pid == 0:
                return
            started = self.children.pop(pid, None)
            if self.metrics is not None:
                self.metrics.process_exited(pid)
            if self.monitor is not None:
                self.monitor.child_exited(pid)
            if started is not None:
                self.child_exited(pid, status, time.monotonic() - started)

    def child_exited(self, pid: int, status: int, lifetime: float) -> None:
        code = os.waitstatus_to_exitcode(status)
        if self.stopping or (self.options.burst and code == 0):
            logger.info("Worker process %s %s", pid, describe_exit(status))
            self.failed = self.failed or code != 0
            return
        logger.log(
            logging.INFO if code == 0 else logging.WARNING,
            "Worker process %s %s; starting another",
            pid,
            describe_exit(status),
        )
        self.restarts += 1
        self.restart_at = max(self.restart_at, time.monotonic() + self.pause(lifetime))

    def pause(self, lifetime: float) -> float:
        """How long to wait before replacing a worker process that lived ``lifetime`` s."""
        if lifetime >= QUICK_DEATH_SECONDS:
            self.quick_deaths = 0
            return 0.0
        self.quick_deaths += 1
        pause = min(MAX_RESTART_PAUSE, 0.5 * 2 ** (self.quick_deaths - 1))
        logger.warning(
            "Worker processes die quickly; waiting %.1fs before the next", pause
        )
        return pause

    def start_child(self) -> None:
        # Connections must not be shared across fork: the child opens its own.
        connections.close_all()
        parent = os.getpid()
        # Until the child has its own handlers, a SIGTERM would be noted in the supervisor's
        # pipe, not the child's: hold the signals back across the fork, and let each side
        # take them after.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                from dpq.worker import WorkerPool

                if self._signal_pipe is not None:
                    self._signal_pipe.forget_after_fork()
                if self.metrics is not None:
                    self.metrics.after_fork()
                pool = WorkerPool(self.queue, replace(self.options, processes=1))
                pool.supervisor_pid = parent
                pool.install_signal_handlers()
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                code = pool.run()
            except BaseException:
                logger.exception("Worker process %s failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
