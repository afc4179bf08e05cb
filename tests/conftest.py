"""Fixtures shared by the whole suite: job factories, queues, waiting without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.db import connection

from dpq.models import Job
from dpq.queue import AtLeastOnceQueue
from tests import tasks


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


@pytest.fixture
def queue():
    """An at-least-once queue over the test tasks; its crash-accounting connection is closed after."""
    q = AtLeastOnceQueue(tasks=tasks.TASKS, notify_channel="dpq-tests")
    yield q
    q.close()


@pytest.fixture
def make_job(queue):
    """Factory: ``make_job(task="noop", args={}, priority=0, ...)`` enqueues through the queue."""

    def make(task: str = "noop", args=None, **fields) -> Job:
        on_queue = fields.pop("queue", None) or queue
        job = on_queue.enqueue(task, args if args is not None else {})
        if fields:
            Job.objects.filter(id=job.id).update(**fields)
            job.refresh_from_db()
        return job

    return make


@pytest.fixture
def count_jobs():
    def count(**filters) -> int:
        return Job.objects.filter(**filters).count()

    return count


@pytest.fixture(autouse=True)
def _reset_queue_connections():
    yield
    connection.close_if_unusable_or_obsolete()
