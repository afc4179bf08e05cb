"""Signals for the worker and the supervisor, read from a pipe by ordinary code.

Python runs a signal handler in the main thread between two bytecodes, wherever that thread
is: holding the pool's lock, or inside a logging handler, neither of which need be
reentrant. So the handlers installed here do nothing; the interpreter's C-level handler
writes each signal's number to a pipe (``signal.set_wakeup_fd``), even while the main thread
waits in a database call, and whoever reads the pipe acts on the signal.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Iterable
from typing import Any


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
