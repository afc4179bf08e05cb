"""The demo's queues. Build a queue once, in a module like this one, and import it wherever
you enqueue; the worker finds it through DPQ_QUEUE or its dotted path."""

from __future__ import annotations

from demo import tasks
from dpq import Schedule
from dpq.queue import AtLeastOnceQueue
from dpq.retry import ExponentialBackoff, FixedBackoff, RetryPolicy

queue = AtLeastOnceQueue(
    tasks={
        "transfer": tasks.transfer,
        "sleep": tasks.sleep,
        "flaky": tasks.flaky,
        "call_service": tasks.call_service,
        "heartbeat": tasks.heartbeat,
    },
    notify_channel="demo",
    name="default",
    # A job whose task raises runs 3 times in all, 2 s then 4 s apart, then is kept as
    # failed. Short delays, so that retries happen while you watch.
    max_attempts=3,
    backoff=ExponentialBackoff(base=2, factor=2, maximum=60, jitter=0.1),
    retry_policies={"flaky": RetryPolicy(max_attempts=3, backoff=FixedBackoff(5))},
)

# A second queue in the same table, run by its own worker (dpq_worker demo.queue.reports_queue),
# so that slow reports never hold up transfers. Its worker also enqueues a report at the
# start of every minute (the dashboard's Schedules page shows it); with several workers of
# the queue, one of them does.
reports_queue = AtLeastOnceQueue(
    tasks={"build_report": tasks.build_report},
    notify_channel="demo-reports",
    name="reports",
    schedules={"build_report": Schedule("* * * * *", args={"seconds": 2})},
)
