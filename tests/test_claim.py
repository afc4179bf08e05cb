"""Claiming: which job comes next, which never does, and no job is claimed twice."""

from __future__ import annotations

import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from dpq import exceptions
from dpq.models import Job
from dpq.queue import AtLeastOnceQueue, AtMostOnceQueue
from tests import tasks
from tests.conftest import run_threads, start_thread, wait_until
from tests.testapp.models import Effect

HOUR = datetime.timedelta(hours=1)


def claimed_ids(q, count: int) -> list[int]:
    return [q.run_once()[0].id for _ in range(count)]


# --- Order --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_run_once_takes_the_highest_priority_first(queue, make_job):
    low = make_job(priority=-5)
    high = make_job(priority=10)
    middle = make_job(priority=0)

    assert claimed_ids(queue, 3) == [high.id, middle.id, low.id]
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_run_once_takes_the_earliest_due_first_within_a_priority(queue, make_job):
    now = timezone.now()
    later = make_job(execute_at=now - datetime.timedelta(minutes=1))
    earlier = make_job(execute_at=now - datetime.timedelta(minutes=5))

    assert claimed_ids(queue, 2) == [earlier.id, later.id]


@pytest.mark.django_db
def test_run_once_returns_none_when_the_queue_is_empty(queue):
    assert queue.run_once() is None


@pytest.mark.django_db
def test_run_once_returns_the_job_and_what_the_task_returned(queue, make_job):
    job = make_job("record", {"note": "r"})

    ran, retval, exc = queue.run_once()

    assert (ran.id, ran.task, ran.args) == (job.id, "record", {"note": "r"})
    assert (retval, exc) == (job.id, None)
    assert Effect.objects.get().job_id == job.id


@pytest.mark.django_db
def test_run_once_skips_excluded_ids(queue, make_job):
    first = make_job(priority=5)
    second = make_job()

    assert queue.run_once(exclude_ids=[first.id])[0].id == second.id
    assert list(Job.objects.values_list("id", flat=True)) == [first.id]


# --- Delays -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_run_once_does_not_claim_a_job_due_later(queue, make_job):
    job = make_job(execute_at=timezone.now() + datetime.timedelta(seconds=30))

    assert queue.run_once() is None
    assert list(Job.objects.values_list("id", flat=True)) == [job.id]


@pytest.mark.django_db
def test_run_once_claims_a_delayed_job_once_it_is_due(queue):
    job = queue.enqueue("record", execute_at=timezone.now() + HOUR)
    assert queue.run_once() is None

    Job.objects.filter(id=job.id).update(execute_at=timezone.now() - HOUR)

    assert queue.run_once()[0].id == job.id
    assert Effect.objects.get().job_id == job.id


# --- Named queues -------------------------------------------------------------------------


@pytest.mark.django_db
def test_queue_never_claims_jobs_of_another_queue(queue, make_job):
    mail = AtLeastOnceQueue(tasks=tasks.TASKS, name="mail")
    mine = make_job(priority=0)
    theirs = make_job(queue=mail, priority=100)

    assert queue.run_once()[0].id == mine.id
    assert queue.run_once() is None
    assert list(Job.objects.values_list("id", flat=True)) == [theirs.id]


@pytest.mark.django_db
def test_dequeue_claims_from_the_named_queue_only(make_job):
    mail = AtLeastOnceQueue(tasks=tasks.TASKS, name="mail")
    theirs = make_job(queue=mail)

    assert Job.dequeue() is None
    assert Job.dequeue(queue="mail").id == theirs.id


# --- At-least-once: the task's writes and the job's removal are one transaction ------------


@pytest.mark.django_db(transaction=True)
def test_run_once_commits_the_task_writes_and_removes_the_job_together(queue, make_job):
    job = make_job("record")

    queue.run_once()

    assert list(Effect.objects.values_list("job_id", flat=True)) == [job.id]
    assert Job.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_run_once_rolled_back_by_the_caller_keeps_the_job_and_drops_the_writes(
    queue, make_job
):
    job = make_job("record")

    with pytest.raises(RuntimeError), transaction.atomic():
        queue.run_once()
        raise RuntimeError("the caller's transaction failed after the task ran")

    assert Effect.objects.count() == 0
    row = Job.objects.get()
    assert (row.id, row.attempts, row.failed_at) == (job.id, 0, None)


@pytest.mark.django_db(transaction=True)
def test_at_least_once_claim_is_invisible_to_other_connections_while_the_task_runs(
    make_job, gate
):
    q = AtLeastOnceQueue(tasks=tasks.ALL_TASKS, crash_limit=None)
    job = make_job("wait_at_gate", queue=q)
    thread = start_thread(q.run_once)
    wait_until(gate.entered.is_set, timeout=10)

    still_there = Job.objects.filter(id=job.id).exists()

    gate.release.set()
    thread.join(30)
    assert thread.result[0].id == job.id
    assert still_there
    assert Job.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_claim_skips_a_job_locked_by_another_connection(
    queue, make_job, other_connection, lock_timeout
):
    locked = make_job(priority=10)
    free = make_job()
    with other_connection.cursor() as cursor:
        cursor.execute("SELECT id FROM dpq_job WHERE id = %s FOR UPDATE", [locked.id])

    assert queue.run_once()[0].id == free.id
    assert queue.run_once() is None
    other_connection.rollback()
    assert list(Job.objects.values_list("id", flat=True)) == [locked.id]


# --- At-most-once -------------------------------------------------------------------------


@pytest.fixture
def at_most_once():
    q = AtMostOnceQueue(tasks=tasks.ALL_TASKS)
    yield q
    q.close()


@pytest.mark.django_db(transaction=True)
def test_at_most_once_commits_the_claim_before_the_task_runs(
    at_most_once, make_job, gate
):
    job = make_job("wait_at_gate", queue=at_most_once)
    thread = start_thread(at_most_once.run_once)
    wait_until(gate.entered.is_set, timeout=10)

    seen_while_running = Job.objects.filter(id=job.id).exists()

    gate.release.set()
    thread.join(30)
    assert thread.result[0].id == job.id
    assert not seen_while_running
    assert Job.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_at_most_once_task_that_raises_leaves_a_failed_job(at_most_once, make_job):
    job = make_job("record_then_fail", queue=at_most_once)

    ran, _, exc = at_most_once.run_once()

    assert ran.id == job.id
    assert isinstance(exc, RuntimeError)
    row = Job.objects.get()
    assert row.failed_at is not None
    assert row.attempts == 1
    assert "RuntimeError: failing on purpose" in row.last_error
    assert Effect.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_at_most_once_never_retries_a_failed_job_by_itself(at_most_once, make_job):
    make_job("fail", queue=at_most_once)
    at_most_once.run_once()
    Job.objects.update(execute_at=timezone.now() - HOUR)

    assert at_most_once.run_once() is None
    assert Job.objects.get().attempts == 1


@pytest.mark.django_db
def test_at_most_once_run_once_inside_a_transaction_raises(at_most_once, make_job):
    job = make_job("record", queue=at_most_once)

    with pytest.raises(exceptions.DpqError, match=r"outside transaction\.atomic"):
        at_most_once.run_once()

    assert list(Job.objects.values_list("id", flat=True)) == [job.id]
    assert Effect.objects.count() == 0


# --- Concurrency --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_never_claim_the_same_job(queue):
    ids = queue.enqueue_many([("record", {}) for _ in range(400)])

    def drain() -> list[int]:
        ran = []
        while (result := queue.run_once()) is not None:
            assert result[2] is None, result[2]
            ran.append(result[0].id)
        return ran

    per_thread = run_threads(drain, 4)

    every = [job_id for ran in per_thread for job_id in ran]
    assert len(every) == len(set(every)) == 400
    assert set(every) == set(ids)
    assert Effect.objects.count() == 400
    assert Job.objects.count() == 0
    # Every thread took part: the claim does not serialise the workers on one row lock.
    assert all(per_thread)
