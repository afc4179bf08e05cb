"""The worker's and the supervisor's signal handlers, in this process: they take no lock.

Python runs a handler in the main thread between two bytecodes, so it may find the main
thread holding any lock: the pool's, as dispatch() and wake_one() take it, or a logging
handler's, which need not be reentrant. Each test holds one and raises the signal.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator

import pytest

from dpq.supervisor import Supervisor
from dpq.worker import WorkerOptions, WorkerPool
from tests.conftest import wait_until
from tests.queues import queue

STOP_SIGNALS = [signal.SIGTERM, signal.SIGINT]


def raise_signal_holding(lock, signum: int, timeout: float = 10.0) -> bool:
    """Raise ``signum`` while this thread holds ``lock``; False if the handler waited for it.

    A handler that waits for the lock would wait forever: a watchdog releases the lock after
    ``timeout``, so that such a test fails instead of hanging.
    """
    returned = threading.Event()
    rescued = threading.Event()

    def watchdog() -> None:
        if not returned.wait(timeout):
            rescued.set()
            lock.release()

    lock.acquire()
    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    try:
        signal.raise_signal(signum)
    finally:
        returned.set()
        thread.join()
        if not rescued.is_set():
            lock.release()
    return not rescued.is_set()


class PlainLockHandler(logging.Handler):
    """Keeps records, under a lock that is not reentrant (logging allows either)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def createLock(self) -> None:
        self.lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def log_handler() -> Iterator[PlainLockHandler]:
    handler = PlainLockHandler()
    logger = logging.getLogger("dpq")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def signal_handlers_restored() -> Iterator[None]:
    """Check that each test puts back this process's own handlers and wake-up fd."""
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    # Reading the wake-up fd means setting one (an event loop of an earlier test may own it).
    wakeup_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_fd)
    yield
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before
    assert signal.set_wakeup_fd(wakeup_fd) == wakeup_fd


@pytest.fixture
def pool(signal_handlers_restored) -> Iterator[WorkerPool]:
    """A pool that is not running, with its signal handlers installed."""
    pool = WorkerPool(queue, WorkerOptions(threads=2))
    pool.install_signal_handlers()
    yield pool
    pool.restore_signal_handlers()


@pytest.fixture
def supervisor(signal_handlers_restored) -> Iterator[Supervisor]:
    """A supervisor that has started no worker process, with its signal handlers installed."""
    supervisor = Supervisor(queue, WorkerOptions(processes=2))
    supervisor.install_signal_handlers()
    yield supervisor
    supervisor.restore_signal_handlers()


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda s: s.name)
def test_a_stop_signal_while_the_main_thread_holds_the_pools_lock_stops_the_pool(
    pool, signum
):
    assert raise_signal_holding(pool._lock, signum), (
        "the handler waited for the pool's lock, which the main thread held"
    )

    wait_until(pool.stopping.is_set, 10)


def test_a_stop_signal_while_the_main_thread_is_in_a_log_handler_stops_the_pool(
    pool, log_handler
):
    assert raise_signal_holding(log_handler.lock, signal.SIGTERM), (
        "the handler waited for the logging handler's lock, which the main thread held"
    )

    wait_until(pool.stopping.is_set, 10)
    wait_until(
        lambda: any(m.startswith("Received SIGTERM") for m in log_handler.messages), 10
    )


def test_a_stop_signal_while_the_supervisor_is_in_a_log_handler_is_kept_for_its_loop(
    supervisor, log_handler
):
    assert raise_signal_holding(log_handler.lock, signal.SIGTERM), (
        "the handler waited for the logging handler's lock, which the main thread held"
    )

    assert supervisor.read_signals() == [signal.SIGTERM]
    assert not supervisor.stopping  # the main loop acts on it, outside the handler
