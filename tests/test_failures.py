"""A task that raises: its writes vanish, the job is retried later, then kept as failed."""

from __future__ import annotations

import datetime
import logging

import pytest
from django.utils import timezone

from dpq import exceptions
from dpq.models import Job
from dpq.queue import AtLeastOnceQueue
from dpq.retry import FixedBackoff, RetryPolicy
from tests import tasks
from tests.testapp.models import Effect

HOUR = datetime.timedelta(hours=1)


def make_due(job_id: int) -> None:
    """Bring a retried job's execute_at into the past: its backoff is over."""
    Job.objects.filter(id=job_id).update(execute_at=timezone.now() - HOUR)


@pytest.fixture
def slow_retry_queue():
    """Two attempts, a minute apart."""
    q = AtLeastOnceQueue(
        tasks=tasks.TASKS, max_attempts=2, backoff=FixedBackoff(60), crash_limit=None
    )
    yield q
    q.close()


@pytest.mark.django_db
def test_task_exception_rolls_back_the_task_writes(queue, make_job):
    make_job("record_then_fail")

    queue.run_once()

    assert Effect.objects.count() == 0


@pytest.mark.django_db
def test_task_exception_is_returned_by_run_once(queue, make_job):
    job = make_job("fail")

    ran, retval, exc = queue.run_once()

    assert ran.id == job.id
    assert retval is None
    assert isinstance(exc, ValueError)


@pytest.mark.django_db
def test_task_exception_records_the_attempt_and_the_full_traceback(queue, make_job):
    job = make_job("record_then_fail")

    queue.run_once()

    row = Job.objects.get()
    assert (row.id, row.attempts, row.failed_at) == (job.id, 1, None)
    assert row.last_error.startswith("Traceback (most recent call last):")
    assert 'in record_then_fail\n    raise RuntimeError(f"failing on purpose' in (
        row.last_error
    )
    assert row.last_error.rstrip().endswith(
        f"RuntimeError: failing on purpose (job {job.id})"
    )


@pytest.mark.django_db
def test_task_exception_delays_the_job_by_the_backoff(slow_retry_queue):
    slow_retry_queue.enqueue("fail")
    before = timezone.now()

    slow_retry_queue.run_once()

    row = Job.objects.get()
    assert (
        before + datetime.timedelta(seconds=55)
        <= row.execute_at
        <= timezone.now() + datetime.timedelta(seconds=65)
    )
    assert slow_retry_queue.run_once() is None


@pytest.mark.django_db
def test_job_is_retried_once_its_backoff_is_over(slow_retry_queue):
    job = slow_retry_queue.enqueue("fail")
    slow_retry_queue.run_once()
    make_due(job.id)

    assert slow_retry_queue.run_once()[0].id == job.id
    assert Job.objects.get().attempts == 2


@pytest.mark.django_db
def test_job_is_failed_after_max_attempts(slow_retry_queue):
    job = slow_retry_queue.enqueue("fail")
    slow_retry_queue.run_once()
    make_due(job.id)

    slow_retry_queue.run_once()

    row = Job.objects.get()
    assert row.failed_at is not None
    assert row.attempts == 2
    assert "ValueError: always fails" in row.last_error


@pytest.mark.django_db
def test_failed_job_is_not_claimed_again(slow_retry_queue):
    job = slow_retry_queue.enqueue("fail", priority=100)
    slow_retry_queue.run_once()
    make_due(job.id)
    slow_retry_queue.run_once()
    make_due(job.id)

    assert slow_retry_queue.run_once() is None
    assert Job.objects.get().attempts == 2


@pytest.mark.django_db
def test_failure_is_logged_as_a_warning_then_as_an_error(slow_retry_queue, caplog):
    job = slow_retry_queue.enqueue("fail")
    caplog.set_level(logging.INFO, logger="dpq")

    slow_retry_queue.run_once()
    make_due(job.id)
    slow_retry_queue.run_once()

    levels = [r.levelno for r in caplog.records if getattr(r, "job_id", None) == job.id]
    assert logging.WARNING in levels
    assert levels[-1] == logging.ERROR


@pytest.mark.django_db
def test_failing_job_does_not_block_the_jobs_behind_it(queue, make_job):
    failing = make_job("fail", priority=10)
    others = [make_job("record") for _ in range(3)]

    results = [queue.run_once() for _ in range(4)]

    assert [r[0].id for r in results] == [failing.id] + [j.id for j in others]
    assert queue.run_once() is None
    assert sorted(Effect.objects.values_list("job_id", flat=True)) == [
        j.id for j in others
    ]
    assert list(Job.objects.values_list("id", flat=True)) == [failing.id]


@pytest.mark.django_db
def test_retry_policy_of_a_task_overrides_the_queue_default():
    q = AtLeastOnceQueue(
        tasks=tasks.TASKS,
        max_attempts=5,
        retry_policies={"fail": RetryPolicy(max_attempts=1)},
        crash_limit=None,
    )
    strict = q.enqueue("fail")
    lenient = q.enqueue("record_then_fail")

    q.run_once()
    q.run_once()

    assert Job.objects.get(id=strict.id).failed_at is not None
    assert Job.objects.get(id=lenient.id).failed_at is None


@pytest.mark.django_db
def test_retry_policy_backoff_of_a_task_is_used():
    q = AtLeastOnceQueue(
        tasks=tasks.TASKS,
        backoff=FixedBackoff(10),
        retry_policies={"fail": RetryPolicy(3, FixedBackoff(7200))},
        crash_limit=None,
    )
    q.enqueue("fail")

    q.run_once()

    assert Job.objects.get().execute_at > timezone.now() + HOUR


def test_retry_policies_must_be_retry_policy_instances():
    with pytest.raises(exceptions.QueueConfigurationError, match="RetryPolicy"):
        AtLeastOnceQueue(tasks=tasks.TASKS, retry_policies={"fail": 3})


def mutate_args_then_fail(queue, job):
    job.args["seen_at"] = timezone.now()
    raise ValueError("failed after changing its args in memory")


@pytest.mark.django_db
def test_failure_is_recorded_with_the_args_the_job_was_enqueued_with():
    q = AtLeastOnceQueue(tasks={"mutate": mutate_args_then_fail}, crash_limit=None)
    job = q.enqueue("mutate", {"n": 1})

    _, _, exc = q.run_once()

    assert isinstance(exc, ValueError)
    row = Job.objects.get()
    assert (row.id, row.args, row.attempts) == (job.id, {"n": 1}, 1)
    assert "failed after changing its args" in row.last_error


# --- A task that no longer exists in the code --------------------------------------------


@pytest.mark.django_db
def test_job_of_an_unknown_task_is_failed_with_an_error_naming_it(make_job):
    old_code = AtLeastOnceQueue(tasks={**tasks.TASKS, "retired": tasks.noop})
    job = old_code.enqueue("retired", {})
    new_code = AtLeastOnceQueue(tasks=tasks.TASKS, crash_limit=None)

    ran, _, exc = new_code.run_once()

    assert ran.id == job.id
    assert isinstance(exc, exceptions.TaskNotRegisteredError)
    row = Job.objects.get()
    assert row.failed_at is not None
    assert "'retired' is not registered" in row.last_error
    assert "known: fail, kill_process, noop, record, record_then_fail" in row.last_error


@pytest.mark.django_db
def test_job_after_one_of_an_unknown_task_still_runs():
    old_code = AtLeastOnceQueue(tasks={**tasks.TASKS, "retired": tasks.noop})
    old_code.enqueue("retired", {}, priority=1)
    nxt = old_code.enqueue("record", {})
    new_code = AtLeastOnceQueue(tasks=tasks.TASKS, crash_limit=None)

    new_code.run_once()
    ran, _, exc = new_code.run_once()

    assert (ran.id, exc) == (nxt.id, None)
    assert Effect.objects.get().job_id == nxt.id
