"""A job's recorded outcome is what happened: errors at COMMIT, writes on any cursor, signal
receivers that raise, ``@retry`` in a batch. Real ``dpq_worker`` processes."""

from __future__ import annotations

import re

import pytest
from django.db import connection, transaction

from dpq.models import Job, JobStart
from tests.conftest import wait_until
from tests.queues import outcome_queue
from tests.testapp.models import Child, Counter, Effect

OUTCOME_QUEUE = "tests.queues.outcome_queue"
UNACCOUNTED_QUEUE = "tests.queues.unaccounted_outcome_queue"
FK_ERROR = 'violates foreign key constraint "testapp_child_effect_id'


def succeeded(log: str, job_id: int) -> bool:
    return re.search(rf"Job {job_id} \(\w+\) succeeded", log) is not None


def assert_no_death(log: str) -> None:
    assert "died" not in log, log
    assert "was running when a worker died" not in log, log


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("queue_path", [OUTCOME_QUEUE, UNACCOUNTED_QUEUE])
@pytest.mark.parametrize("task", ["orphan_child", "orphan_child_on_driver_cursor"])
def test_a_deferred_constraint_violation_at_commit_is_the_jobs_failure(
    worker_process, queue_path, task
):
    job = outcome_queue.enqueue(task)
    worker = worker_process("--burst", queue=queue_path, threads=2)

    assert worker.wait_for_exit(60) == 0, worker.log
    failed = Job.objects.get(id=job.id)
    assert failed.attempts == 2  # max_attempts holds
    assert failed.failed_at is not None
    assert FK_ERROR in failed.last_error
    assert "IntegrityError" in failed.last_error
    assert not succeeded(worker.log, job.id), worker.log
    assert_no_death(worker.log)
    assert not JobStart.objects.exists()
    assert not Child.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_deferred_violation_fails_only_its_own_job_in_a_batch(worker_process):
    before, orphan, after = outcome_queue.enqueue_many(
        [("record", {}), ("record_with_orphan", {}), ("record", {})]
    )
    worker = worker_process("--batch", "10", "--burst", queue=OUTCOME_QUEUE, threads=1)

    assert worker.wait_for_exit(60) == 0, worker.log
    assert sorted(Effect.objects.values_list("job_id", flat=True)) == [before, after]
    failed = Job.objects.get()
    assert failed.id == orphan
    assert failed.attempts == 2
    assert failed.failed_at is not None
    assert FK_ERROR in failed.last_error
    assert succeeded(worker.log, before) and succeeded(worker.log, after)
    assert not succeeded(worker.log, orphan), worker.log
    assert_no_death(worker.log)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("threads", [1, 2])
def test_a_serialization_failure_at_commit_is_the_jobs_failure(
    worker_process, tmp_path, threads
):
    started, release = tmp_path / "started", tmp_path / "release"
    job = outcome_queue.enqueue(
        "serialization_conflict", {"started": str(started), "release": str(release)}
    )
    worker = worker_process(
        "--max-jobs",
        "1",
        queue=OUTCOME_QUEUE,
        threads=threads,
        env={"DPQ_TEST_ISOLATION": "serializable"},
    )
    wait_until(started.exists, 30)
    # Write skew with the job's transaction: each reads what the other writes.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        list(Counter.objects.filter(name="b"))
        Counter.objects.create(name="a")
    release.write_text("")

    assert worker.wait_for_exit(60) == 0, worker.log
    put_back = Job.objects.get(id=job.id)
    assert put_back.attempts == 1, put_back.last_error
    assert put_back.failed_at is None, (put_back.last_error, worker.log)
    assert "could not serialize access" in put_back.last_error
    assert not succeeded(worker.log, job.id), worker.log
    assert_no_death(worker.log)
    assert list(Counter.objects.values_list("name", flat=True)) == ["a"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_raising_tasks_writes_are_rolled_back_on_every_cursor(worker_process):
    kinds = ["orm", "django", "driver", "dict", "named", "kept"]
    keeper = outcome_queue.enqueue("keep_cursor")
    ids = outcome_queue.enqueue_many(
        [("record_then_fail_on", {"cursor": kind}) for kind in kinds]
    )
    worker = worker_process("--burst", queue=OUTCOME_QUEUE, threads=1)

    assert worker.wait_for_exit(60) == 0, worker.log
    assert not Effect.objects.exists(), list(Effect.objects.values_list("note"))
    failed = Job.objects.filter(id__in=ids)
    assert failed.count() == len(kinds)
    for job in failed:
        assert job.failed_at is not None
        assert "failing after a write through the" in job.last_error
    assert not Job.objects.filter(id=keeper.id).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batch", ["1", "10"])
def test_signal_receivers_that_raise_change_no_outcome(worker_process, batch):
    ok, failing = outcome_queue.enqueue_many([("record", {}), ("fail", {})])
    worker = worker_process(
        "--burst",
        "--batch",
        batch,
        queue=OUTCOME_QUEUE,
        threads=2,
        env={"DPQ_TEST_RAISING_RECEIVERS": "1"},
    )

    assert worker.wait_for_exit(60) == 0, worker.log
    assert list(Effect.objects.values_list("job_id", flat=True)) == [ok]
    failed = Job.objects.get()
    assert failed.id == failing
    assert failed.attempts == 2
    assert failed.failed_at is not None
    assert "ValueError: always fails" in failed.last_error
    for name in ("job_started", "job_succeeded", "job_failed"):
        assert f"receiver of {name} fails on purpose" in worker.log, worker.log
    assert "Traceback" in worker.log
    assert "division by zero" in worker.log
    assert_no_death(worker.log)
    assert not JobStart.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batch", ["1", "10"])
def test_retry_decorator_advances_its_count_in_a_batch(worker_process, batch):
    job = outcome_queue.enqueue("retried_fail", {})
    worker = worker_process("--burst", "--batch", batch, queue=OUTCOME_QUEUE, threads=1)

    assert worker.wait_for_exit(60) == 0, worker.log
    assert worker.log.count("Retrying in") == 2, worker.log
    assert "exceeded its retry limit" in worker.log
    assert "duplicate key" not in worker.log
    # Each run's write was rolled back with its failure.
    assert not Effect.objects.exists()
    assert not Job.objects.filter(id=job.id).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("isolation", ["serializable", "read committed"])
def test_a_lone_thread_at_any_isolation_level_records_and_clears_its_starts(
    worker_process, isolation
):
    ok, failing = outcome_queue.enqueue_many([("record", {}), ("fail", {})])
    env = {"DPQ_TEST_ISOLATION": "serializable"} if isolation == "serializable" else {}
    worker = worker_process("--burst", queue=OUTCOME_QUEUE, threads=1, env=env)

    assert worker.wait_for_exit(60) == 0, worker.log
    assert list(Effect.objects.values_list("job_id", flat=True)) == [ok]
    failed = Job.objects.get()
    assert (failed.id, failed.attempts) == (failing, 2)
    assert "ValueError: always fails" in failed.last_error
    assert not JobStart.objects.exists()
    assert "could not serialize" not in worker.log
