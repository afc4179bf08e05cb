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
from typing import TYPE_CHECKING, Any

from django.db import connections

if TYPE_CHECKING:
    from dpq.queue import Queue
    from dpq.worker import WorkerOptions

logger = logging.getLogger(__name__)

# A child that dies sooner than this after its start is restarted after a growing pause,
# so a worker that cannot start does not spin.
QUICK_DEATH_SECONDS = 5.0
MAX_RESTART_PAUSE = 30.0
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(number).name}"
        return f"was killed by signal {number}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    def __init__(self, queue: Queue, options: WorkerOptions) -> None:
        self.queue = queue
        self.options = options
        self.children: dict[int, float] = {}  # pid -> start time
        self.stopping = False
        self.signals = 0
        self.quick_deaths = 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.handle_signal)
        signal.signal(signal.SIGINT, self.handle_signal)
        logger.info(
            "dpq supervisor started: %s worker processes of %s threads for queue %r",
            self.options.processes,
            self.options.threads,
            self.queue.name,
        )
        for _ in range(self.options.processes):
            self.start_child()
        failed = False
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = self.children.pop(pid, None)
            if started is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.stopping or (self.options.burst and code == 0):
                logger.info("Worker process %s %s", pid, describe_exit(status))
                failed = failed or code != 0
                continue
            level = logging.INFO if code == 0 else logging.WARNING
            logger.log(
                level,
                "Worker process %s %s; starting another",
                pid,
                describe_exit(status),
            )
            self.pause_after(time.monotonic() - started)
            if not self.stopping:
                self.start_child()
        logger.info("dpq supervisor stopped")
        return 1 if failed else 0

    def pause_after(self, lifetime: float) -> None:
        if lifetime >= QUICK_DEATH_SECONDS:
            self.quick_deaths = 0
            return
        self.quick_deaths += 1
        pause = min(MAX_RESTART_PAUSE, 0.5 * 2 ** (self.quick_deaths - 1))
        logger.warning(
            "Worker processes die quickly; waiting %.1fs before the next", pause
        )
        deadline = time.monotonic() + pause
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, deadline - time.monotonic()))

    def start_child(self) -> None:
        # Connections must not be shared across fork: the child opens its own.
        connections.close_all()
        parent = os.getpid()
        # Until the child has its own handlers, a SIGTERM would run the supervisor's handler
        # in it: hold the signals back across the fork, and let each side take them after.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                from dpq.worker import WorkerPool

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

    def handle_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        self.stopping = True
        name = signal.Signals(signum).name
        if self.signals == 1:
            logger.info(
                "Received %s: asking %s worker processes to stop",
                name,
                len(self.children),
            )
        else:
            logger.warning("Received %s again: worker processes exit at once", name)
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
