"""A task's transaction.on_commit callback that raises: the job's outcome stands, and
run_once() returns ``(job, None, exc)`` as the original package's did, instead of raising."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from dpq.models import Job
from dpq.queue import AtLeastOnceQueue
from tests.testapp.models import Effect

CALLED: list[str] = []


def record_then_fail_on_commit(queue, job):
    Effect.objects.create(job_id=job.id, note="committed before the callback")
    transaction.on_commit(lambda: 1 / 0)
    transaction.on_commit(lambda: CALLED.append("after the failing one"))
    return "retval"


def record_with_callback(queue, job):
    Effect.objects.create(job_id=job.id)
    transaction.on_commit(lambda: CALLED.append(f"job {job.id}"))
    return job.id


@pytest.fixture
def on_commit_queue():
    CALLED.clear()
    q = AtLeastOnceQueue(
        tasks={
            "record_then_fail_on_commit": record_then_fail_on_commit,
            "record_with_callback": record_with_callback,
        }
    )
    yield q
    q.close()


@pytest.mark.django_db(transaction=True)
def test_run_once_returns_the_exception_of_a_failing_on_commit_callback(
    on_commit_queue,
):
    job = on_commit_queue.enqueue("record_then_fail_on_commit")

    ran, retval, exc = on_commit_queue.run_once()

    assert (ran.id, retval) == (job.id, None)
    assert isinstance(exc, ZeroDivisionError)


@pytest.mark.django_db(transaction=True)
def test_a_failing_on_commit_callback_leaves_the_job_done_and_its_writes_committed(
    on_commit_queue,
):
    job = on_commit_queue.enqueue("record_then_fail_on_commit")

    on_commit_queue.run_once()

    assert Effect.objects.filter(job_id=job.id).exists()
    assert not Job.objects.exists()
    # Django drops the callbacks after the one that raised, as the original package saw.
    assert CALLED == []


@pytest.mark.django_db(transaction=True)
def test_a_failing_on_commit_callback_is_logged_with_its_traceback(
    on_commit_queue, caplog
):
    job = on_commit_queue.enqueue("record_then_fail_on_commit")

    with caplog.at_level(logging.ERROR, logger="dpq"):
        on_commit_queue.run_once()

    [record] = [r for r in caplog.records if "on_commit" in r.getMessage()]
    assert str(job.id) in record.getMessage()
    assert record.exc_info[0] is ZeroDivisionError


@pytest.mark.django_db(transaction=True)
def test_on_commit_callbacks_that_do_not_raise_run_after_the_commit(on_commit_queue):
    job = on_commit_queue.enqueue("record_with_callback")

    ran, retval, exc = on_commit_queue.run_once()

    assert (ran.id, retval, exc) == (job.id, job.id, None)
    assert CALLED == [f"job {job.id}"]
