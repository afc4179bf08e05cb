"""Pausing a queue with real worker processes: claims stop, running jobs finish, it lasts."""

from __future__ import annotations

import time

import pytest

import dpq
from dpq import pauses
from tests.conftest import wait_until
from tests.queues import worker_queue as tests_queue
from tests.testapp.models import Effect
from tests.worker.conftest import scalar

pytestmark = pytest.mark.django_db(transaction=True)


def enqueue(n: int, task: str = "record", **args) -> list[int]:
    return [tests_queue.enqueue(task, dict(args)).id for _ in range(n)]


def test_paused_queue_is_not_claimed_after_a_worker_restart(worker_process):
    tests_queue.pause(by="tests")
    ids = enqueue(3)

    worker = worker_process(threads=2, queue="tests.queues.worker_queue")
    worker.wait_for_log("is paused (since")
    worker.wait_for_log("by tests")
    # The worker read the pause before its threads claimed anything: nothing ran.
    assert Effect.objects.count() == 0

    assert tests_queue.resume()
    worker.wait_for_log("is resumed: claiming again")
    wait_until(lambda: Effect.objects.count() == 3, 30)
    assert sorted(Effect.objects.values_list("job_id", flat=True)) == ids


def test_pause_stops_claims_within_two_seconds_and_running_jobs_finish(worker_process):
    worker = worker_process(threads=2, queue="tests.queues.worker_queue")
    worker.wait_for_log("dpq worker started")
    running = enqueue(1, "slow_record", seconds=2)
    wait_until(lambda: scalar("SELECT count(*) FROM dpq_job") == 0, 30)  # claimed

    assert dpq.pause_queue(
        "default" if tests_queue.name == "default" else tests_queue.name
    )
    paused_at = time.monotonic()
    worker.wait_for_log("is paused (since", timeout=2)
    assert time.monotonic() - paused_at < 2
    waiting = enqueue(2)

    # The job that was running when the pause came finishes and commits.
    wait_until(lambda: Effect.objects.filter(job_id=running[0]).exists(), 30)
    time.sleep(1.5)  # long enough for a worker that ignores the pause to claim both
    assert Effect.objects.filter(job_id__in=waiting).count() == 0
    assert scalar("SELECT count(*) FROM dpq_job") == 2

    tests_queue.resume()
    wait_until(lambda: Effect.objects.filter(job_id__in=waiting).count() == 2, 30)


def test_pause_in_sql_is_seen_by_the_idle_check(worker_process):
    worker = worker_process(threads=1, queue="tests.queues.worker_queue")
    worker.wait_for_log("dpq worker started")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO dpq_queuepause (queue) VALUES (%s)", [tests_queue.name]
        )
    worker.wait_for_log("is paused (since")
    assert pauses.queue_pause(tests_queue.name) is not None
    assert list(dpq.paused_queues()) == [tests_queue.name]
    enqueue(1)
    time.sleep(1.5)
    assert Effect.objects.count() == 0
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM dpq_queuepause WHERE queue = %s", [tests_queue.name]
        )
    wait_until(lambda: Effect.objects.count() == 1, 30)


def test_pause_and_resume_say_whether_they_changed_anything():
    assert tests_queue.pause() is True
    assert tests_queue.pause() is False
    assert tests_queue.resume() is True
    assert tests_queue.resume() is False
    assert pauses.queue_pause(tests_queue.name) is None


def test_a_pause_that_comes_while_a_thread_connects_stops_its_claim(worker_process):
    # The thread's first claim waits for its connection; the pause lands meanwhile.
    worker = worker_process(
        threads=1,
        queue="tests.queues.worker_queue",
        env={"DPQ_TEST_THREAD_CONNECT_DELAY": "3"},
    )
    worker.wait_for_log("dpq worker started")
    tests_queue.pause(by="tests")
    worker.wait_for_log("is paused (since")
    enqueue(1)
    time.sleep(4.5)  # the connection is open by now, and a claim would have run
    assert Effect.objects.count() == 0, worker.log

    assert tests_queue.resume()
    wait_until(lambda: Effect.objects.count() == 1, 30)
