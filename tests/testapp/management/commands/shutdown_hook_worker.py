"""A Worker subclass that overrides handle_shutdown(): it goes on after SIGINT, stops on SIGTERM."""

from __future__ import annotations

import signal
import sys

from dpq.commands import Worker
from tests.queues import worker_queue


class Command(Worker):
    queue = worker_queue

    def handle_shutdown(self, sig, frame):
        print(
            f"handle_shutdown got {signal.Signals(sig).name}",
            file=sys.stderr,
            flush=True,
        )
        if sig == signal.SIGINT:
            return
        super().handle_shutdown(sig, frame)
