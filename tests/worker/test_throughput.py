"""Throughput history: workers write jobs done and failed per minute in batches, and prune."""

from __future__ import annotations

import datetime
import signal

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from dpq import throughput
from dpq.models import ThroughputMinute
from tests.conftest import wait_until
from tests.queues import queue

pytestmark = pytest.mark.slow


def totals() -> tuple[int, int]:
    sums = ThroughputMinute.objects.filter(queue="default").aggregate(
        done=Sum("done"), failed=Sum("failed")
    )
    return sums["done"] or 0, sums["failed"] or 0


def test_workers_write_counts_in_batches(worker_process):
    first = worker_process(threads=2)
    second = worker_process(threads=2)
    first.wait_for_log("dpq worker started")
    second.wait_for_log("dpq worker started")
    queue.enqueue_many([("noop", {})] * 30 + [("fail", {})])
    # max_attempts 3: the failing job fails three times.
    wait_until(lambda: totals() == (30, 3), 60)
    # A row per queue and minute, however many jobs: written every few seconds.
    assert ThroughputMinute.objects.count() <= 3
    for worker in (first, second):
        worker.send(signal.SIGTERM)
        assert worker.wait_for_exit() == 0


def test_a_stopping_worker_writes_what_it_counted(worker_process):
    queue.enqueue_many([("noop", {})] * 7)
    worker = worker_process("--burst", threads=1)
    assert worker.wait_for_exit() == 0
    assert totals() == (7, 0)


def test_minutes_older_than_a_day_are_pruned(transactional_db):
    now = timezone.now().replace(second=0, microsecond=0)
    ThroughputMinute.objects.create(queue="default", minute=now, done=1)
    ThroughputMinute.objects.create(
        queue="default", minute=now - datetime.timedelta(hours=25), done=1
    )
    throughput.COUNTER.take()  # what pools of earlier tests in this process counted
    raw = connection.get_new_connection(connection.get_connection_params())
    raw.autocommit = True
    try:
        throughput.ThroughputWriter().tick(raw, force=True)
    finally:
        raw.close()
    assert list(ThroughputMinute.objects.values_list("minute", flat=True)) == [now]
