"""Queue instances that worker subprocesses load by dotted path (tests.queues.<name>)."""

from __future__ import annotations

from dpq.queue import AtLeastOnceQueue, AtMostOnceQueue
from dpq.retry import FixedBackoff
from tests import tasks

queue = AtLeastOnceQueue(
    tasks=tasks.TASKS,
    notify_channel="dpq-tests",
    backoff=FixedBackoff(0.5),
    crash_limit=3,
)
polling_queue = AtLeastOnceQueue(
    tasks=tasks.TASKS, backoff=FixedBackoff(0.5), crash_limit=3
)
unaccounted_queue = AtLeastOnceQueue(
    tasks=tasks.TASKS,
    notify_channel="dpq-tests",
    backoff=FixedBackoff(0.5),
    crash_limit=None,
)
at_most_once_queue = AtMostOnceQueue(tasks=tasks.TASKS, notify_channel="dpq-tests")

# The worker suite's queue: the settings of ``queue`` and tasks that sleep or wait on files.
worker_queue = AtLeastOnceQueue(
    tasks=tasks.WORKER_TASKS,
    notify_channel="dpq-tests",
    backoff=FixedBackoff(0.5),
    crash_limit=3,
)

# The batch suite's queue: a failed run is retried only after a minute, so it stays where the
# batch recorded it while the test looks.
batch_queue = AtLeastOnceQueue(
    tasks=tasks.BATCH_TASKS,
    notify_channel="dpq-tests",
    backoff=FixedBackoff(60),
    crash_limit=3,
)

# The outcome suite's queues: two attempts, retried at once, so that a burst worker runs a
# failing job until it is kept as failed.
OUTCOME_SETTINGS = {
    "notify_channel": "dpq-tests",
    "max_attempts": 2,
    "backoff": FixedBackoff(0),
}
outcome_queue = AtLeastOnceQueue(
    tasks=tasks.WORKER_TASKS, crash_limit=3, **OUTCOME_SETTINGS
)
unaccounted_outcome_queue = AtLeastOnceQueue(
    tasks=tasks.WORKER_TASKS, crash_limit=None, **OUTCOME_SETTINGS
)
