"""Stop signals: noted by handlers that do nothing, acted on by ordinary code.

Python runs a signal handler in the main thread between two bytecodes, wherever that thread
is: holding the pool's lock, or inside a logging handler, neither of which need be
reentrant. So the handlers installed here do nothing; the interpreter's C-level handler
writes each signal's number to a pipe (``signal.set_wakeup_fd``), even while the main thread
waits in a database call, and whoever reads the pipe acts on the signal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from dpq.worker import WorkerPool

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How much longer than --grace a stop signal gives a process before it is ended: time to
# close connections, unless its main thread is stuck in a call.
EXIT_MARGIN = 5.0


def exit_at_once() -> NoReturn:
    """End the process now, with code 1: PostgreSQL rolls back what its connections hold."""
    logging.shutdown()
    os._exit(1)


def _do_nothing(signum: int, frame: Any) -> None:
    """The Python-level handler: there to catch the signal; the pipe's reader acts on it."""


class SignalPipe:
    """While installed, the numbers of ``signums`` as they arrive, to be read from a pipe.

    ``ignore`` are set to SIG_IGN meanwhile. Install and restore in the main thread (Python
    allows signal handlers nowhere else); read and wait in any one thread.
    """

    def __init__(self, signums: Iterable[int], *, ignore: Iterable[int] = ()) -> None:
        self.signums = tuple(signums)
        self.ignore = tuple(ignore)
        self._read_fd = self._write_fd = -1
        self._previous_fd = -1
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        # The pipe before the handlers: a signal caught by a handler is never lost.
        self._previous_fd = signal.set_wakeup_fd(
            self._write_fd, warn_on_full_buffer=False
        )
        for signum in self.signums:
            self._previous[signum] = signal.signal(signum, _do_nothing)
        for signum in self.ignore:
            self._previous[signum] = signal.signal(signum, signal.SIG_IGN)

    def read(self) -> list[int] | None:
        """The signals that arrived since the last read, oldest first; None once restored."""
        numbers: list[int] = []
        while True:
            try:
                data = os.read(self._read_fd, 512)
            except BlockingIOError:
                return numbers
            if not data:  # restore() closed the pipe's other end
                return numbers or None
            numbers += [number for number in data if number in self.signums]

    def wait(self, timeout: float | None) -> list[int] | None:
        """Wait up to ``timeout`` seconds (None: no limit) for a signal, then read()."""
        select.select([self._read_fd], [], [], timeout)
        return self.read()

    def restore(self) -> None:
        """Put back the previous handlers and wake-up fd; read() then returns None."""
        # The handlers first: a signal in between goes to them, not to a pipe nobody reads.
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        signal.set_wakeup_fd(self._previous_fd)
        self._previous.clear()
        os.close(self._write_fd)

    def close(self) -> None:
        """Close the reading end (once the reader is done with it)."""
        with contextlib.suppress(OSError):
            os.close(self._read_fd)

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's handlers and pipe, which are not its own."""
        signal.set_wakeup_fd(-1)
        for signum in self._previous:
            signal.signal(signum, signal.SIG_DFL)
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class SignalThread(threading.Thread):
    """Acts on a worker pool's stop signals: the first stops the pool, the second exits.

    The pool's main thread may be where no signal reaches it (a database call that never
    returns): this thread also ends the process --grace plus EXIT_MARGIN seconds after the
    first signal if the pool has not finished by then.
    """

    def __init__(self, pool: WorkerPool, pipe: SignalPipe) -> None:
        super().__init__(name="dpq-signals", daemon=True)
        self.pool = pool
        self.pipe = pipe
        self.received = 0

    def run(self) -> None:
        grace = self.pool.options.grace
        deadline: float | None = None
        try:
            while True:
                timeout = (
                    None if deadline is None else max(0.0, deadline - time.monotonic())
                )
                signums = self.pipe.wait(timeout)
                if signums is None:  # restored
                    return
                for signum in signums:
                    if self.handle(signum) and deadline is None:
                        deadline = time.monotonic() + grace + EXIT_MARGIN
                if deadline is not None and time.monotonic() >= deadline:
                    deadline = None
                    if not self.pool.finished.is_set():
                        logger.error(
                            "The worker has not stopped %ss after the signal (--grace %ss); "
                            "exiting: running at-least-once jobs roll back and return to the "
                            "queue",
                            grace + EXIT_MARGIN,
                            grace,
                        )
                        self.pool.give_back_claims()
                        exit_at_once()
        except BaseException:
            # No thread would act on the next signal: stop while the pool still can.
            logger.exception("The signal thread failed; stopping the worker")
            self.pool.fail()
        finally:
            self.pipe.close()

    def handle(self, signum: int) -> bool:
        """Act on a stop signal; False if the pool's ``on_stop_signal`` asked to go on."""
        name = signal.Signals(signum).name
        asks_to_stop = self.pool.on_stop_signal
        if asks_to_stop is not None and not asks_to_stop(signum):
            logger.info("Received %s; the worker command asked to go on", name)
            return False
        self.received += 1
        if self.received == 1:
            logger.info(
                "Received %s: no new jobs are claimed; running jobs may finish for up to %ss "
                "(send it again to exit at once)",
                name,
                self.pool.options.grace,
            )
            self.pool.stop()
            return True
        # Set first: the main thread, should it finish meanwhile, must not exit 0.
        self.pool.exiting.set()
        logger.warning(
            "Received %s again: exiting at once; running at-least-once jobs roll back and "
            "return to the queue",
            name,
        )
        self.pool.give_back_claims()
        exit_at_once()
