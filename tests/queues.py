"""Queue instances that worker subprocesses load by dotted path (tests.queues.<name>)."""

from __future__ import annotations

import datetime
import os
import threading
import time
from pathlib import Path

from dpq.queue import AtLeastOnceQueue, AtMostOnceQueue
from dpq.retry import FixedBackoff
from dpq.schedules import Schedule
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


class DispatcherBugQueue(AtLeastOnceQueue):
    """A queue whose table name the worker's main thread cannot read once the file named by
    $DPQ_TEST_DISPATCHER_BUG exists: a bug in the dispatcher's due-check, on demand.

    The read raises; or, if the file says "hang", it says "hanging" instead and the read hangs
    for an hour (a call that never returns).
    The worker threads, and any process without that variable, use the queue as usual.
    """

    @property
    def job_table(self) -> str:
        path = os.environ.get("DPQ_TEST_DISPATCHER_BUG")
        if (
            path
            and threading.current_thread() is threading.main_thread()
            and os.path.exists(path)
        ):
            if Path(path).read_text() == "hang":
                Path(path).write_text("hanging")
                time.sleep(3600)
            raise RuntimeError("a bug in the dispatcher (injected by the test)")
        return super().job_table


dispatcher_bug_queue = DispatcherBugQueue(
    tasks=tasks.WORKER_TASKS, notify_channel="dpq-tests", crash_limit=3
)


# The schedule suites' queue: record_due every second, each missed due time enqueued after a
# takeover ("all"), so the due times the Effects record must follow each other without a gap.
scheduled_queue = AtLeastOnceQueue(
    tasks=tasks.SCHEDULE_TASKS,
    notify_channel="dpq-tests",
    name="scheduled",
    schedules={
        "record_due": Schedule(datetime.timedelta(seconds=1), missed="all"),
    },
)
