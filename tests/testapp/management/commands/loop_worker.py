"""A Worker subclass that overrides run_available_tasks(): it runs the original's loop."""

from __future__ import annotations

import sys

from dpq.commands import Worker
from tests.queues import worker_queue


class Command(Worker):
    queue = worker_queue

    def run_available_tasks(self):
        super().run_available_tasks()
        print("drained the queue", file=sys.stderr, flush=True)
