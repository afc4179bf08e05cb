"""The original package's task decorators: retry and repeat."""

from __future__ import annotations

import datetime
import logging

import pytest
from django.db import transaction
from django.utils import timezone

from dpq.decorators import exponential_with_jitter, repeat, retry
from dpq.models import Job
from dpq.queue import AtLeastOnceQueue
from tests.testapp.models import Effect

MINUTE = datetime.timedelta(minutes=1)
FIVE_MINUTES = datetime.timedelta(minutes=5)


@retry(max_retries=2, delayfn=lambda retries: MINUTE)
def flaky(queue, job):
    Effect.objects.create(job_id=job.id, note="rolled back with the failure")
    raise ValueError("flaky")


@retry(max_retries=2, delayfn=lambda retries: MINUTE, Exc=KeyError)
def fails_otherwise(queue, job):
    raise ValueError("not a KeyError")


@repeat(FIVE_MINUTES)
def every_five_minutes(queue, job):
    Effect.objects.create(job_id=job.id, note="ran")


@repeat(FIVE_MINUTES)
def every_five_minutes_failing(queue, job):
    raise RuntimeError("this run failed")


@pytest.fixture
def deco_queue():
    q = AtLeastOnceQueue(
        tasks={
            "flaky": flaky,
            "fails_otherwise": fails_otherwise,
            "every_five_minutes": every_five_minutes,
            "every_five_minutes_failing": every_five_minutes_failing,
        },
        crash_limit=None,
    )
    yield q
    q.close()


def make_due() -> None:
    Job.objects.update(execute_at=timezone.now() - datetime.timedelta(hours=1))


# --- retry --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retry_puts_the_job_back_later_with_the_retry_counted(deco_queue):
    job = deco_queue.enqueue("flaky", {"to": "a@example.com"})
    before = timezone.now()

    _, _, exc = deco_queue.run_once()

    assert exc is None
    row = Job.objects.get()
    assert row.id == job.id
    assert row.args == {"to": "a@example.com", "retries": 1}
    assert before + MINUTE <= row.execute_at <= timezone.now() + MINUTE
    assert (row.attempts, row.failed_at) == (0, None)
    assert Effect.objects.count() == 0


@pytest.mark.django_db
def test_retry_counts_every_failure(deco_queue):
    deco_queue.enqueue("flaky", {})
    deco_queue.run_once()
    make_due()

    deco_queue.run_once()

    assert Job.objects.get().args == {"retries": 2}


@pytest.mark.django_db
def test_retry_drops_the_job_with_an_error_log_after_max_retries(deco_queue, caplog):
    job = deco_queue.enqueue("flaky", {"retries": 2})
    caplog.set_level(logging.ERROR, logger="dpq.decorators")

    _, _, exc = deco_queue.run_once()

    assert exc is None
    assert Job.objects.count() == 0
    assert Effect.objects.count() == 0
    [record] = caplog.records
    assert "exceeded its retry limit" in record.getMessage()
    assert record.job_id == job.id
    assert record.exc_info is not None


@pytest.mark.django_db
def test_retry_leaves_other_exceptions_to_the_queue(deco_queue):
    deco_queue.enqueue("fails_otherwise", {})

    _, _, exc = deco_queue.run_once()

    assert isinstance(exc, ValueError)
    row = Job.objects.get()
    assert row.attempts == 1
    assert "retries" not in row.args


def test_exponential_with_jitter_doubles_from_64_seconds_within_15_seconds():
    delayfn = exponential_with_jitter()

    for retries, centre in [(0, 64), (1, 128), (4, 1024)]:
        seconds = [delayfn(retries).total_seconds() for _ in range(200)]
        assert all(centre - 15 <= s <= centre + 15 for s in seconds)


# --- repeat -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_repeat_enqueues_the_next_run_delay_later_with_the_same_job(deco_queue):
    job = deco_queue.enqueue("every_five_minutes", {"report": "daily"}, priority=3)

    deco_queue.run_once()

    assert Effect.objects.get().job_id == job.id
    nxt = Job.objects.get()
    assert nxt.id != job.id
    assert (nxt.task, nxt.args, nxt.priority) == (
        "every_five_minutes",
        {"report": "daily"},
        3,
    )
    assert nxt.execute_at == job.execute_at + FIVE_MINUTES


@pytest.mark.django_db
def test_repeat_enqueues_no_next_run_when_the_task_fails(deco_queue):
    job = deco_queue.enqueue("every_five_minutes_failing", {})

    deco_queue.run_once()

    row = Job.objects.get()
    assert (row.id, row.attempts) == (job.id, 1)


@pytest.mark.django_db(transaction=True)
def test_repeat_enqueues_no_next_run_when_the_transaction_rolls_back(deco_queue):
    job = deco_queue.enqueue("every_five_minutes", {})

    with pytest.raises(RuntimeError), transaction.atomic():
        deco_queue.run_once()
        raise RuntimeError("the claim transaction failed")

    assert list(Job.objects.values_list("id", flat=True)) == [job.id]
    assert Effect.objects.count() == 0
