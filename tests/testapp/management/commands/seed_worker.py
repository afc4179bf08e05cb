"""A worker command written the original package's way: subclass Worker and set ``queue``."""

from __future__ import annotations

from dpq.commands import Worker
from tests.queues import queue


class Command(Worker):
    queue = queue
