"""The worker process: a pool of threads, each with its own connection, and a dispatcher.

The main thread LISTENs on its own connection and wakes one idle thread per notification.
A thread that claims a job wakes the next idle one before running it, so one notification
for a batch of jobs fans out over the pool. Without notifications the dispatcher checks
for ready work every ``delay`` seconds, and sooner when a delayed job falls due. The
threads themselves are in dpq/threads.py, the handling of stop signals in dpq/shutdown.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from dpq import keepalives, shutdown, throughput
from dpq.dispatcher import Dispatcher, seconds_until
from dpq.monitor import PoolMonitor
from dpq.options import WorkerOptions, describe_database
from dpq.starts import ClaimsInFlight, StartCount
from dpq.threads import (
    SoloGate,
    WorkerThread,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from dpq.pauses import Pause
    from dpq.queue import Queue, RunResult

logger = logging.getLogger(__name__)

# How long an exiting worker may spend giving its running jobs' claims back.
GIVE_BACK_TIMEOUT = 3.0


class WorkerPool(Dispatcher):
    """N worker threads for one queue, and the dispatcher that wakes them."""

    def __init__(
        self,
        queue: Queue,
        options: WorkerOptions,
        *,
        on_stop_signal: Callable[[int], bool] | None = None,
    ) -> None:
        if options.threads < 1:
            raise ValueError(f"threads must be >= 1, got {options.threads}")
        if options.batch > 1 and queue.at_most_once:
            raise ValueError(
                f"--batch needs at-least-once delivery: queue {queue.name!r} is an "
                f"AtMostOnceQueue, whose claim commits before each job runs"
            )
        self.queue = queue
        self.options = options
        self.listen = (
            bool(queue.notify_channel) if options.listen is None else options.listen
        )
        if self.listen and not queue.notify_channel:
            raise ValueError(
                f"cannot listen: queue {queue.name!r} has no notify_channel; "
                f"build it with notify_channel='...' or run without --listen"
            )
        self.gate = SoloGate()
        # The claims the threads hold open: a lost connection's rollback is not a death.
        self.claims = ClaimsInFlight()
        self.stopping = threading.Event()
        # The queue's pause as the dispatcher last read it; threads claim only once it was read.
        self.paused: Pause | None = None
        self.pause_known = threading.Event()
        self.jobs_started = 0
        self.failed = False
        self._lock = threading.Lock()
        self._idle: list[WorkerThread] = []
        self._pending_wakes = 0
        self._due_hint: float | None = None
        self._threads: list[WorkerThread] = []
        self._scheduler_thread: threading.Thread | None = None
        self._background_thread: threading.Thread | None = None
        self._running_threads = 0
        self._signal_pipe: shutdown.SignalPipe | None = None
        self._signal_thread: shutdown.SignalThread | None = None
        # Set once run() is over: a stop signal then has nothing left to wait for.
        self.finished = threading.Event()
        # Set when a second signal ends the process: the signal thread exits with code 1.
        self.exiting = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._listener: Any = None
        # Set in a child of --processes: the supervisor forwards signals, and the child stops
        # by itself if the supervisor dies.
        self.supervisor_pid: int | None = None
        # Asked on each stop signal whether it stops the pool (Worker.handle_shutdown).
        self.on_stop_signal = on_stop_signal
        # The heartbeat and thread gauges when asked for (dpq/monitor.py); jobs done and
        # failed per minute, written every few seconds (dpq/throughput.py).
        wanted = options.heartbeat_file is not None or options.metrics_port is not None
        self.monitor: PoolMonitor | None = PoolMonitor(self) if wanted else None
        self.throughput = throughput.writer()

    # --- Coordination between threads ------------------------------------------------

    def reserve_job(self) -> bool:
        """Count a job towards --max-jobs before claiming it; False once the limit is reached."""
        with self._lock:
            if (
                self.options.max_jobs is None
                or self.jobs_started < self.options.max_jobs
            ):
                self.jobs_started += 1
                return True
        # Outside the lock: stop() takes it too, and threading.Lock is not reentrant.
        self.stop()
        return False

    def reserve_more(self, wanted: int) -> int:
        """Count up to ``wanted`` more jobs towards --max-jobs (a batch's); return how many."""
        with self._lock:
            if self.options.max_jobs is not None:
                wanted = min(wanted, self.options.max_jobs - self.jobs_started)
            wanted = max(0, wanted)
            self.jobs_started += wanted
            return wanted

    def release_job(self, count: int = 1) -> None:
        with self._lock:
            self.jobs_started -= count

    def wake_one(self) -> None:
        """Wake one idle thread; remembered if none is idle, so a wake-up is never lost."""
        # While every thread is busy and as many wake-ups wait as there are threads (a
        # drain: each claim calls this), the lock would be taken to do nothing. Any thread
        # that goes idle then takes a waiting wake-up instead of sleeping.
        if not self._idle and self._pending_wakes >= self.options.threads:
            return
        with self._lock:
            if self._idle:
                self._idle.pop().wake.set()
            elif self._pending_wakes < self.options.threads:
                self._pending_wakes += 1

    def idle(self, thread: WorkerThread) -> None:
        """Wait until the dispatcher or another thread wakes this one (or the pool stops)."""
        with self._lock:
            if self._pending_wakes:
                self._pending_wakes -= 1
                return
            # stop() wakes only the threads idle when it runs: one that stopped in between
            # must not wait, with no timeout, for a wake-up that never comes.
            if self.stopping.is_set():
                return
            thread.wake.clear()
            self._idle.append(thread)
        logger.debug("Worker thread %s is idle", thread.role)
        # No timeout: the dispatcher checks for ready and due jobs once per --delay for the
        # whole process and wakes a thread, so idle threads cost the database nothing.
        thread.wake.wait()
        with self._lock:
            if thread in self._idle:
                self._idle.remove(thread)

    def wait_if_paused(self, thread: WorkerThread) -> bool:
        """Before a claim: True when the queue is paused, after idling until woken."""
        self.pause_known.wait()
        if self.paused is None:
            return False
        if not self.options.burst:
            self.idle(thread)
        return True

    def note_result(self, result: RunResult) -> None:
        """Tell the dispatcher when a job put back for a retry falls due."""
        job, _, exc = result
        if exc is None or job.failed_at is not None:
            return
        due = time.monotonic() + max(0.0, seconds_until(job.execute_at))
        with self._lock:
            if self._due_hint is None or due < self._due_hint:
                self._due_hint = due
        self._poke()

    def thread_states(self) -> tuple[int, int]:
        """How many threads are busy (claiming or running a job) and how many idle."""
        with self._lock:
            idle = len(self._idle)
            return max(0, self._running_threads - idle), idle

    def thread_finished(self, thread: WorkerThread) -> None:
        with self._lock:
            self._running_threads -= 1
            if thread in self._idle:
                self._idle.remove(thread)
        self._poke()

    def fail(self) -> None:
        """Stop the pool after an unexpected error: the process then exits with code 1."""
        self.failed = True
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.pause_known.set()
        with self._lock:
            for thread in self._idle:
                thread.wake.set()
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    # --- The main thread -----------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (signal, --burst, --max-jobs); return the process exit code."""
        self.install_signal_handlers()
        keepalives.apply_worker_defaults(self.queue.using)
        delivery = "at-most-once" if self.queue.at_most_once else "at-least-once"
        logger.info(
            "dpq worker started: queue %r, %s%s, %s, %s delivery, database %s",
            self.queue.name,
            "1 thread"
            if self.options.threads == 1
            else f"{self.options.threads} threads",
            f", batches of up to {self.options.batch} jobs or {self.options.batch_ms:g} ms"
            if self.options.batch > 1
            else "",
            f"listening on {self.queue.notify_channel!r}"
            if self.listen
            else f"polling every {self.options.delay}s",
            delivery,
            describe_database(self.queue.using),
            extra={"queue": self.queue.name, "threads": self.options.threads},
        )
        if self.monitor is not None:
            self.monitor.start()
        try:
            for number in range(1, self.options.threads + 1):
                thread = WorkerThread(self, number)
                self._threads.append(thread)
                with self._lock:
                    self._running_threads += 1
                thread.start()
            self.start_scheduler()
            self.start_background()
            self.dispatch()
        except BaseException:
            # Only a lost connection is known to be safe to carry on from (dispatch() does);
            # anything else stops the pool, and the exit code asks for a fresh process.
            logger.exception("The dispatcher failed; stopping the worker")
            self.fail()
        finally:
            self.close_listener()
        try:
            code = self.finish()
        finally:
            self.finished.set()
        if self.exiting.is_set():
            # The signal thread gives the running jobs' claims back, then exits with 1.
            time.sleep(GIVE_BACK_TIMEOUT + 1)
            shutdown.exit_at_once()
        return code

    def start_scheduler(self) -> None:
        """Compete to schedule the queue's schedules, in a thread (dpq/scheduler.py)."""
        if not self.queue.schedules or not self.options.scheduler or self.options.burst:
            return
        from dpq.schedule_store import ScheduleTable
        from dpq.scheduler import Scheduler, SchedulerThread

        logger.info(
            "Queue %r has %s schedule(s); this worker enqueues them whenever no other "
            "worker of the queue does",
            self.queue.name,
            len(self.queue.schedules),
            extra={"queue": self.queue.name},
        )
        scheduler = Scheduler(
            self.queue, self.queue.schedules, ScheduleTable(self.queue)
        )
        self._scheduler_thread = SchedulerThread(self, scheduler)
        self._scheduler_thread.start()

    def start_background(self) -> None:
        """The queue's upkeep thread (Queue.background_thread), if it has one."""
        if self.options.burst:
            return
        self._background_thread = self.queue.background_thread(self.stopping)
        if self._background_thread is not None:
            self._background_thread.start()

    def finish(self) -> int:
        """Wait for the threads (up to --grace once stopping) and close everything."""
        deadline = time.monotonic() + self.options.grace
        for thread in self._threads:
            remaining = deadline - time.monotonic() if self.stopping.is_set() else None
            thread.join(remaining if remaining is None else max(0.0, remaining))
        if self._scheduler_thread is not None:
            # Between rounds it waits on the stop event, so it ends at once; closing its
            # connection hands scheduling over to another worker.
            self.stopping.set()
            self._scheduler_thread.join(max(1.0, deadline - time.monotonic()))
        if self._background_thread is not None:
            self.stopping.set()
            self._background_thread.join(max(1.0, deadline - time.monotonic()))
        alive = [t.role for t in self._threads if t.is_alive()]
        if alive:
            logger.error(
                "Grace period of %ss is over and threads %s still run a job; exiting: their "
                "at-least-once jobs roll back and return to the queue",
                self.options.grace,
                ", ".join(alive),
            )
            self.give_back_claims()
            self.queue.close()
            shutdown.exit_at_once()
        self.queue.close()
        if self.throughput is not None:
            self.throughput.flush(self.queue.using)
        if self.monitor is not None:
            self.monitor.close()
        logger.info("dpq worker stopped after %s job(s)", self.jobs_started)
        return 1 if self.failed else 0

    def give_back_claims(self, timeout: float = GIVE_BACK_TIMEOUT) -> None:
        """Before exiting with jobs running: their claims roll back on purpose, not as deaths.

        Written on the crash-accounting connection, in a thread of its own so that an
        unreachable server cannot hold the exit up for more than ``timeout`` seconds.
        """
        claims = self.claims.all()
        if not claims or not self.queue.has_crash_accounting:
            return
        counts = [StartCount(job_id, 0, 0, claim_xid) for job_id, claim_xid in claims]

        def record() -> None:
            try:
                self.queue.start_recorder.record(counts, worker=self.queue.worker_name)
            except Exception:  # exiting anyway: the jobs then count as crashes
                logger.warning(
                    "Could not give back the running jobs' claims", exc_info=True
                )

        writer = threading.Thread(target=record, name="dpq-give-back", daemon=True)
        writer.start()
        writer.join(timeout)

    def install_signal_handlers(self) -> None:
        """Act on SIGTERM/SIGINT in a thread of their own (shutdown.SignalThread).

        Only in the main thread (the only one Python lets install handlers). They stay after
        run(), so that a signal while the process exits still ends it cleanly; a caller that
        goes on after run() puts its own back with restore_signal_handlers().
        """
        if threading.current_thread() is not threading.main_thread():
            return
        if self._signal_pipe is not None:
            return
        # Ctrl-C reaches the whole process group; the supervisor turns it into SIGTERM.
        ignore = (signal.SIGINT,) if self.supervisor_pid is not None else ()
        self._signal_pipe = shutdown.SignalPipe(
            set(shutdown.STOP_SIGNALS) - set(ignore), ignore=ignore
        )
        self._signal_pipe.install()
        self._signal_thread = shutdown.SignalThread(self, self._signal_pipe)
        self._signal_thread.start()

    def restore_signal_handlers(self) -> None:
        if self._signal_pipe is None or self._signal_thread is None:
            return
        self._signal_pipe.restore()
        self._signal_thread.join()
        self._signal_pipe = self._signal_thread = None


def run_worker(
    queue: Queue,
    options: WorkerOptions,
    *,
    on_stop_signal: Callable[[int], bool] | None = None,
) -> int:
    """Run a worker pool for ``queue``, or --processes of them; return the exit code.

    ``on_stop_signal(signum)`` is asked, in the process that received a SIGTERM or SIGINT,
    whether that signal stops the worker; without it every one does.
    """
    if options.processes > 1:
        from dpq.supervisor import Supervisor

        return Supervisor(queue, options, on_stop_signal=on_stop_signal).run()
    return WorkerPool(queue, options, on_stop_signal=on_stop_signal).run()
