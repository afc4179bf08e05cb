"""dpq.testing: run what a test enqueued inside its transaction, and assert what was enqueued."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dpq import testing
from dpq.models import Job
from dpq.queue import AtLeastOnceQueue, AtMostOnceQueue
from tests import tasks
from tests.testapp.models import Effect
from tests.usersuite.tests import committed_start_records


def enqueue_follow_up(queue, job):
    queue.enqueue("record", {"note": f"after {job.id}"})
    return "enqueued"


TASKS = {**tasks.TASKS, "enqueue_follow_up": enqueue_follow_up}


@pytest.fixture
def queue():
    q = AtLeastOnceQueue(tasks=TASKS, notify_channel="dpq-tests")
    yield q
    q.close()


@pytest.fixture
def reports():
    q = AtLeastOnceQueue(tasks=TASKS, name="reports")
    yield q
    q.close()


@pytest.mark.django_db
def test_run_jobs_runs_every_ready_job_and_returns_each_outcome(queue):
    first = queue.enqueue("record")
    failing = queue.enqueue("fail")

    outcomes = testing.run_jobs(queue)

    assert [(o.job.id, o.retval, o.succeeded) for o in outcomes] == [
        (first.id, first.id, True),
        (failing.id, None, False),
    ]
    assert isinstance(outcomes[1].exc, ValueError)
    assert "ValueError: always fails" in outcomes[1].traceback
    assert outcomes[0].traceback is None


@pytest.mark.django_db
def test_run_jobs_runs_the_jobs_that_jobs_enqueue(queue):
    queue.enqueue("enqueue_follow_up")

    outcomes = testing.run_jobs(queue)

    assert [o.job.task for o in outcomes] == ["enqueue_follow_up", "record"]
    assert Effect.objects.get().note == f"after {outcomes[0].job.id}"
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_run_jobs_puts_a_failing_job_back_and_does_not_run_it_again(queue):
    job = queue.enqueue("fail")

    outcomes = testing.run_jobs(queue, include_delayed=True)

    assert len(outcomes) == 1
    assert Job.objects.get(id=job.id).attempts == 1


@pytest.mark.django_db
def test_run_jobs_leaves_delayed_jobs_unless_asked(queue):
    later = queue.enqueue(
        "record", execute_at=timezone.now() + datetime.timedelta(hours=1)
    )

    assert testing.run_jobs(queue) == []
    [outcome] = testing.run_jobs(queue, include_delayed=True)
    assert outcome.job.id == later.id and outcome.succeeded


@pytest.mark.django_db
def test_run_jobs_runs_several_queues_together(queue, reports):
    a = queue.enqueue("record")
    b = reports.enqueue("record")

    outcomes = testing.run_jobs(queue, reports)

    assert {o.job.id for o in outcomes} == {a.id, b.id}


@pytest.mark.django_db
def test_run_jobs_runs_an_at_most_once_queue_inside_the_test_transaction():
    q = AtMostOnceQueue(tasks=TASKS)
    job = q.enqueue("record")

    [outcome] = testing.run_jobs(q)

    assert (outcome.job.id, outcome.retval) == (job.id, job.id)


@pytest.mark.django_db
def test_run_jobs_stops_a_task_that_enqueues_itself_for_ever():
    def again(queue, job):
        queue.enqueue("again")

    q = AtLeastOnceQueue(tasks={"again": again})
    q.enqueue("again")

    with pytest.raises(AssertionError, match="ran 5 jobs and more are ready"):
        testing.run_jobs(q, limit=5)


@pytest.mark.django_db
def test_run_jobs_records_no_start_on_another_connection(queue):
    queue.enqueue("record")
    queue.enqueue("fail")

    testing.run_jobs(queue)

    assert committed_start_records() == 0


@pytest.mark.django_db
def test_run_jobs_after_a_claim_the_test_rolled_back_records_no_start(queue):
    # A claim rolled back in a savepoint leaves its id in the row, as a dead worker's does.
    job = queue.enqueue("record")
    with pytest.raises(RuntimeError), transaction.atomic():
        Job.dequeue()
        raise RuntimeError("roll the claim back")

    [outcome] = testing.run_jobs(queue)

    assert outcome.job.id == job.id
    assert committed_start_records() == 0


@pytest.mark.django_db
def test_helpers_make_no_query_until_called(queue):
    with CaptureQueriesContext(connection) as captured:
        queue.enqueue("record", {"n": 1})

    assert len(captured) == 1
    testing.assert_enqueued("record", args={"n": 1})


@pytest.mark.django_db
def test_assert_enqueued_matches_task_args_queue_priority_and_execute_at(
    queue, reports
):
    at = timezone.now() + datetime.timedelta(hours=1)
    job = reports.enqueue("record", {"n": 1, "token": "x"}, execute_at=at, priority=5)

    found = testing.assert_enqueued(
        "record",
        args={"n": 1, "token": testing.ANY},
        queue="reports",
        priority=5,
        execute_at=at + datetime.timedelta(milliseconds=300),
    )

    assert [j.id for j in found] == [job.id]
    testing.assert_enqueued(queue=reports, count=1)


@pytest.mark.django_db
def test_assert_enqueued_fails_with_what_was_enqueued_instead(queue):
    queue.enqueue("record", {"n": 2})
    queue.enqueue("noop", priority=3)

    with pytest.raises(AssertionError) as failed:
        testing.assert_enqueued("record", args={"n": 1})

    message = str(failed.value)
    assert (
        "expected a job with task='record', args={'n': 1} to be enqueued, found 0"
        in (message)
    )
    assert "2 job(s) are:" in message
    assert "'record' on queue 'default', args {'n': 2}, priority 0" in message
    assert "'noop' on queue 'default', args {}, priority 3" in message


@pytest.mark.django_db
def test_assert_enqueued_with_count_fails_on_another_number(queue):
    queue.enqueue("record")
    queue.enqueue("record")

    with pytest.raises(AssertionError, match=r"expected 1 job\(s\) with task='record'"):
        testing.assert_enqueued("record", count=1)
    assert len(testing.assert_enqueued("record", count=2)) == 2


@pytest.mark.django_db
def test_assert_enqueued_on_an_empty_table_says_so(queue):
    with pytest.raises(AssertionError, match="no job is enqueued"):
        testing.assert_enqueued("record")


@pytest.mark.django_db
def test_assert_enqueued_ignores_failed_jobs(queue):
    job = queue.enqueue("record")
    Job.objects.filter(id=job.id).update(failed_at=timezone.now())

    with pytest.raises(AssertionError):
        testing.assert_enqueued("record")
    testing.assert_not_enqueued("record")


@pytest.mark.django_db
def test_assert_not_enqueued_lists_the_jobs_that_match(queue):
    queue.enqueue("record", {"n": 1})

    with pytest.raises(AssertionError, match=r"expected no job with task='record'"):
        testing.assert_not_enqueued("record")
    testing.assert_not_enqueued("record", args={"n": 2})


def test_the_pytest_plugin_fixtures_are_the_helpers(
    dpq_run_jobs, dpq_assert_enqueued, dpq_enqueued_jobs
):
    assert dpq_run_jobs is testing.run_jobs
    assert dpq_assert_enqueued is testing.assert_enqueued
    assert dpq_enqueued_jobs is testing.enqueued_jobs
