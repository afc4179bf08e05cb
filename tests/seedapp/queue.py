"""The original README's usage, pasted as it was: the queue module of ``someapp``."""

from __future__ import annotations

# fmt: off
from dpq.queue import AtLeastOnceQueue


def debug_task(queue, job):
    print(job.args)

queue = AtLeastOnceQueue(
    tasks={
        'debug_task': debug_task,
    },
    notify_channel='my-queue',
)
# fmt: on
