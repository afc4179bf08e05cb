"""A scheduler command written the original package's way: subclass Scheduler, set
``queue`` and ``tasks``. record_due every second, on the schedule suites' queue."""

from __future__ import annotations

import datetime

from dpq_scheduler.commands import Scheduler
from dpq_scheduler.schedules import repeater
from tests.queues import scheduled_queue


class Command(Scheduler):
    queue = scheduled_queue
    tasks = {"record_due": repeater(datetime.timedelta(seconds=1))}
