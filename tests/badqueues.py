"""A module whose queue Queue(...) refuses when it is imported (tests/test_checks.py)."""

from __future__ import annotations

from dpq.queue import AtLeastOnceQueue
from tests import tasks

queue = AtLeastOnceQueue(tasks=tasks.TASKS, schedules={"record": "*/5 * * *"})
