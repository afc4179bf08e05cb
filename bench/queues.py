"""The queues the bench's worker subprocesses load by dotted path (bench.queues.<name>).

All share the queue name "bench": one runs at a time, and the fill helpers need one name.
Polling queues (no channel) are drained; the listening ones measure pickup latency.
"""

from __future__ import annotations

from bench import tasks
from dpq.queue import AtLeastOnceQueue, AtMostOnceQueue

NAME = "bench"
CHANNEL = "dpq-bench"

at_least_once = AtLeastOnceQueue(tasks.TASKS, name=NAME, crash_limit=3)
at_least_once_unaccounted = AtLeastOnceQueue(tasks.TASKS, name=NAME, crash_limit=None)
at_most_once = AtMostOnceQueue(tasks.TASKS, name=NAME, crash_limit=None)
at_most_once_accounted = AtMostOnceQueue(tasks.TASKS, name=NAME, crash_limit=3)

at_least_once_listen = AtLeastOnceQueue(tasks.TASKS, CHANNEL, name=NAME, crash_limit=3)
at_least_once_unaccounted_listen = AtLeastOnceQueue(
    tasks.TASKS, CHANNEL, name=NAME, crash_limit=None
)
at_most_once_listen = AtMostOnceQueue(tasks.TASKS, CHANNEL, name=NAME, crash_limit=None)
