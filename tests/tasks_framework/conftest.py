"""Fixtures of the Tasks framework suite; the worker fixtures come from tests/worker."""

from __future__ import annotations

import pytest

from tests.tasks_framework import tasks
from tests.tasks_framework.compat import task_backends
from tests.worker.conftest import worker_process  # noqa: F401


@pytest.fixture
def backend():
    return task_backends["default"]


@pytest.fixture
def run(backend):
    """``run(queue_name="default")``: claim and run one job of that queue, as a worker does."""

    def run_one(queue_name: str = "default"):
        return backend.queue(queue_name).run_once()

    yield run_one
    for queue in backend._queues.values():
        queue.close()


@pytest.fixture
def gate():
    tasks.GATE.clear()
    tasks.ENTERED.clear()
    yield tasks.GATE
    tasks.GATE.set()
