"""The Job model: its states, the seed's ``Job.dequeue()``, and the requeue / delete API."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection, models, transaction
from django.utils import timezone

from dpq.models import CLAIM_COLUMNS, BaseJob, Job, JobState
from tests import tasks
from tests.conftest import wait_until

HOUR = datetime.timedelta(hours=1)


def _failed(make_job, **fields):
    return make_job("fail", failed_at=timezone.now(), attempts=3, **fields)


# --- States -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_job_state_is_queued_when_due(make_job):
    job = make_job()

    assert job.state == JobState.QUEUED
    assert Job.objects.queued().filter(id=job.id).exists()


@pytest.mark.django_db
def test_job_state_is_delayed_when_due_later(make_job):
    job = make_job(execute_at=timezone.now() + HOUR)

    assert job.state == JobState.DELAYED
    assert list(Job.objects.delayed().values_list("id", flat=True)) == [job.id]
    assert not Job.objects.queued().exists()


@pytest.mark.django_db
def test_job_state_is_failed_when_failed_at_is_set(make_job):
    job = _failed(make_job)

    assert job.state == JobState.FAILED
    assert list(Job.objects.failed().values_list("id", flat=True)) == [job.id]
    assert not Job.objects.queued().exists()


@pytest.mark.django_db
def test_job_to_json_holds_the_row(make_job):
    job = make_job("record", {"note": "x"}, priority=4)

    data = job.to_json()

    assert data["id"] == job.id
    assert data["task"] == "record"
    assert data["args"] == {"note": "x"}
    assert data["priority"] == 4
    assert data["queue"] == "default"
    assert data["failed_at"] is None


# --- Job.dequeue(), as the seed documents it ---------------------------------------------


@pytest.mark.django_db
def test_dequeue_claims_the_best_ready_job_and_deletes_it(make_job):
    low = make_job(priority=1)
    high = make_job(priority=5)

    job = Job.dequeue()

    assert job.id == high.id
    assert job.priority == 5
    assert list(Job.objects.values_list("id", flat=True)) == [low.id]


@pytest.mark.django_db
def test_dequeue_returns_none_when_no_job_is_ready(make_job):
    make_job(execute_at=timezone.now() + HOUR)

    assert Job.dequeue() is None
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_dequeue_skips_excluded_ids(make_job):
    first = make_job(priority=5)
    second = make_job(priority=1)

    job = Job.dequeue(exclude_ids=[first.id])

    assert job.id == second.id
    assert list(Job.objects.values_list("id", flat=True)) == [first.id]


@pytest.mark.django_db
def test_dequeued_job_goes_back_with_save_force_insert(make_job):
    original = make_job("record", {"note": "back"}, priority=3)
    job = Job.dequeue()
    assert not Job.objects.exists()

    job.save(force_insert=True)

    back = Job.objects.get()
    assert (back.id, back.task, back.args, back.priority) == (
        original.id,
        "record",
        {"note": "back"},
        3,
    )


@pytest.mark.django_db(transaction=True)
def test_dequeue_in_a_transaction_that_rolls_back_leaves_the_job(make_job):
    job = make_job()

    with pytest.raises(RuntimeError), transaction.atomic():
        assert Job.dequeue().id == job.id
        raise RuntimeError("worker gave up")

    assert list(Job.objects.values_list("id", flat=True)) == [job.id]


# --- Requeue ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_requeue_makes_a_failed_job_ready_and_keeps_attempts(make_job):
    job = _failed(make_job)

    result = Job.objects.requeue([job.id])

    assert (result.requeued, result.skipped_running, result.missing) == (1, 0, 0)
    job.refresh_from_db()
    assert job.failed_at is None
    assert job.attempts == 3
    assert job.state == JobState.QUEUED


@pytest.mark.django_db
def test_requeue_resets_attempts_when_asked(make_job):
    job = _failed(make_job)

    Job.objects.requeue([job.id], reset_attempts=True)

    job.refresh_from_db()
    assert (job.failed_at, job.attempts) == (None, 0)


@pytest.mark.django_db
def test_requeue_makes_a_delayed_job_ready_now(make_job):
    job = make_job(execute_at=timezone.now() + HOUR, attempts=1)

    result = Job.objects.requeue([job.id])

    assert result.requeued == 1
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.attempts == 1


@pytest.mark.django_db
def test_requeue_counts_queued_and_missing_jobs_without_touching_them(make_job):
    queued = make_job()
    before = Job.objects.get(id=queued.id).execute_at

    result = Job.objects.requeue([queued.id, 999_999_999])

    assert (result.requeued, result.skipped_queued, result.missing) == (0, 1, 1)
    assert Job.objects.get(id=queued.id).execute_at == before


@pytest.mark.django_db
def test_requeue_failed_selects_by_queue_and_task(queue, make_job):
    from dpq.queue import AtLeastOnceQueue

    other = AtLeastOnceQueue(tasks=tasks.TASKS, name="other")
    wanted = _failed(make_job)
    other_task = make_job("noop", failed_at=timezone.now())
    other_queue = make_job("fail", queue=other, failed_at=timezone.now())

    result = Job.objects.requeue_failed(queue="default", task="fail")

    assert result.requeued == 1
    assert list(Job.objects.failed().order_by("id").values_list("id", flat=True)) == [
        other_task.id,
        other_queue.id,
    ]
    assert Job.objects.get(id=wanted.id).failed_at is None


@pytest.mark.django_db
def test_requeue_refuses_ids_that_are_not_integers():
    with pytest.raises(ValueError, match="job ids must be integers"):
        Job.objects.requeue(["seven"])


# --- Delete -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_delete_jobs_removes_failed_and_delayed_jobs(make_job):
    failed = _failed(make_job)
    delayed = make_job(execute_at=timezone.now() + HOUR)
    kept = make_job()

    result = Job.objects.delete_jobs([failed.id, delayed.id, 999_999_999])

    assert (result.deleted, result.skipped_running, result.missing) == (2, 0, 1)
    assert list(Job.objects.values_list("id", flat=True)) == [kept.id]


# --- Rows held by a running job are skipped, not waited for --------------------------------


@pytest.fixture
def running_job(queue, make_job, gate, lock_timeout):
    """A job that a worker thread has claimed and is running (its row lock held) until teardown."""
    import threading

    from dpq.queue import AtLeastOnceQueue

    runner = AtLeastOnceQueue(tasks=tasks.ALL_TASKS, crash_limit=None)
    job = make_job("wait_at_gate", queue=runner)
    outcome = {}

    def run():
        try:
            outcome["result"] = runner.run_once()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(gate.entered.is_set, timeout=10)
    yield job
    gate.release.set()
    thread.join(30)
    assert not thread.is_alive()
    assert outcome["result"][0].id == job.id


@pytest.mark.django_db(transaction=True)
def test_requeue_skips_a_running_job(running_job):
    result = Job.objects.requeue([running_job.id])

    assert (result.requeued, result.skipped_running, result.missing) == (0, 1, 0)


@pytest.mark.django_db(transaction=True)
def test_requeue_failed_skips_a_failed_job_locked_by_another_connection(
    make_job, other_connection, lock_timeout
):
    job = _failed(make_job)
    with other_connection.cursor() as cursor:
        cursor.execute("SELECT id FROM dpq_job WHERE id = %s FOR UPDATE", [job.id])

    result = Job.objects.requeue_failed()

    assert (result.requeued, result.skipped_running) == (0, 1)
    other_connection.rollback()
    assert Job.objects.get(id=job.id).failed_at is not None


@pytest.mark.django_db(transaction=True)
def test_delete_jobs_skips_a_running_job(running_job):
    result = Job.objects.delete_jobs([running_job.id])

    assert (result.deleted, result.skipped_running, result.missing) == (0, 1, 0)


# --- Building claimed jobs ------------------------------------------------------------------


class NotedJob(BaseJob):
    """A job model whose fields are not the claim's columns in their order.

    A field of its own, and ``priority`` declared again (which moves it after the others).
    """

    priority = models.IntegerField(default=5)
    note = models.TextField(default="none")

    class Meta:
        app_label = "testapp"
        db_table = "testapp_notedjob"
        managed = False


def test_a_job_model_with_other_fields_is_built_from_a_claim_by_name():
    now = timezone.now()
    row = (7, now, now + HOUR, 3, "record", '{"a": 1}', "default", 2, "boom", None)
    row += (4, 1, 123, 456)  # starts, solo starts, earlier xmax, claim's transaction id

    assert not NotedJob._claim_columns_are_fields()
    noted = NotedJob.from_claim_row(row)
    job = Job.from_claim_row(row)  # the positional path

    for name in CLAIM_COLUMNS:
        assert getattr(noted, name) == getattr(job, name), name
    assert (noted.id, noted.execute_at, noted.args, noted.attempts) == (
        7,
        now + HOUR,
        {"a": 1},
        2,
    )
    assert noted.note == "none"
    assert (noted.starts, noted.solo_starts, noted.held_by, noted.claim_xid) == (
        4,
        1,
        123,
        456,
    )
    assert noted.claimed_args == '{"a": 1}'
    assert not noted._state.adding
