"""The original README's worker command, pasted as it was (``someapp`` is tests.seedapp)."""

# ruff: noqa: I001  (the README separates the two imports)

from __future__ import annotations

# fmt: off
from dpq.commands import Worker

from tests.seedapp.queue import queue

class Command(Worker):
    queue = queue
# fmt: on
