"""Crash accounting: a job that kills its worker is failed after crash_limit deaths."""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from dpq import driver, exceptions, sql
from dpq.models import Job, JobStart
from dpq.queue import AtLeastOnceQueue
from dpq.retry import FixedBackoff
from tests import tasks
from tests.conftest import child_env, current_database_url, wait_until
from tests.testapp.models import Effect

ROOT = Path(__file__).resolve().parent.parent


def run_worker(crash_limit: str = "3") -> subprocess.CompletedProcess:
    """Run tests/crash_worker.py until the queue is empty or a task kills it."""
    return subprocess.run(
        [sys.executable, "-m", "tests.crash_worker", crash_limit],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def pending_jobs() -> int:
    return Job.objects.filter(failed_at__isnull=True).count()


@pytest.fixture
def accounted_queue():
    q = AtLeastOnceQueue(tasks=tasks.ALL_TASKS, crash_limit=3)
    yield q
    q.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_job_that_kills_its_worker_is_failed_after_crash_limit_deaths(accounted_queue):
    before = accounted_queue.enqueue_many([("record", {}) for _ in range(5)])
    poison = accounted_queue.enqueue("kill_process")
    after = accounted_queue.enqueue_many([("record", {}) for _ in range(5)])

    runs = []
    while pending_jobs() and len(runs) < 10:
        runs.append(run_worker())

    codes = [run.returncode for run in runs]
    assert codes.count(-signal.SIGKILL) == 3, [(r.returncode, r.stderr) for r in runs]
    assert codes[-1] == 0, runs[-1].stderr
    row = Job.objects.get()
    assert row.id == poison.id
    assert row.failed_at is not None
    assert "the worker died 3 times" in row.last_error
    # Each death was counted once: by its solo start, not again by the next claim.
    assert "3 starts in all" in row.last_error
    assert sorted(Effect.objects.values_list("job_id", flat=True)) == sorted(
        before + after
    )
    assert not JobStart.objects.filter(job_id__in=[poison.id, *before, *after]).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_writes_of_a_task_that_kills_its_worker_are_rolled_back(accounted_queue):
    job = accounted_queue.enqueue("record_then_kill")

    run = run_worker()

    assert run.returncode == -signal.SIGKILL, run.stderr
    assert Effect.objects.count() == 0
    row = Job.objects.get()
    assert (row.id, row.attempts, row.failed_at) == (job.id, 0, None)
    assert JobStart.objects.get(job_id=job.id).starts == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_crash_limit_none_writes_no_start_records(accounted_queue):
    job = accounted_queue.enqueue("record_then_kill")

    run = run_worker("none")

    assert run.returncode == -signal.SIGKILL, run.stderr
    assert not JobStart.objects.filter(job_id=job.id).exists()
    assert Job.objects.get().id == job.id


@pytest.mark.django_db(transaction=True)
def test_start_is_recorded_and_committed_before_the_task_runs(accounted_queue):
    job = accounted_queue.enqueue("record_starts")

    accounted_queue.run_once()

    assert Effect.objects.get(job_id=job.id).note == "1"


@pytest.mark.django_db(transaction=True)
def test_crash_limit_none_records_no_start_while_the_task_runs():
    q = AtLeastOnceQueue(tasks=tasks.ALL_TASKS, crash_limit=None)
    job = q.enqueue("record_starts")

    q.run_once()

    assert Effect.objects.get(job_id=job.id).note == "0"
    assert not JobStart.objects.filter(job_id=job.id).exists()


@pytest.mark.django_db(transaction=True)
def test_successful_run_leaves_no_start_record(accounted_queue):
    job = accounted_queue.enqueue("record")

    accounted_queue.run_once()

    assert Effect.objects.get().job_id == job.id
    assert not JobStart.objects.filter(job_id=job.id).exists()


@pytest.mark.django_db(transaction=True)
def test_failed_run_leaves_no_start_record(accounted_queue):
    job = accounted_queue.enqueue("fail")

    accounted_queue.run_once()

    assert Job.objects.get().attempts == 1
    assert not JobStart.objects.filter(job_id=job.id).exists()


@pytest.mark.django_db(transaction=True)
def test_job_with_crash_limit_solo_starts_is_failed_without_running(accounted_queue):
    job = accounted_queue.enqueue("record")
    JobStart.objects.create(job_id=job.id, starts=4, solo_starts=3)

    ran, _, exc = accounted_queue.run_once()

    assert ran.id == job.id
    assert isinstance(exc, exceptions.CrashLimitExceeded)
    assert Effect.objects.count() == 0
    row = Job.objects.get()
    assert row.failed_at is not None
    assert "the worker died 3 times while running this job alone" in row.last_error
    assert not JobStart.objects.filter(job_id=job.id).exists()


@pytest.mark.django_db(transaction=True)
def test_starts_beside_other_jobs_do_not_count_towards_crash_limit(accounted_queue):
    job = accounted_queue.enqueue("record")
    JobStart.objects.create(job_id=job.id, starts=5, solo_starts=2)

    _, _, exc = accounted_queue.run_once()

    assert exc is None
    assert Effect.objects.get().job_id == job.id
    assert not JobStart.objects.filter(job_id=job.id).exists()


def claim_and_die() -> int:
    """Claim the best job on a session of its own, then end that session: a worker's death.

    Returns the dead claim's transaction id.
    """
    raw = driver.connect(current_database_url())
    with raw.cursor() as cursor:
        cursor.execute(
            sql.render(sql.CLAIM_JOBS),
            {"queue": "default", "exclude_ids": [], "limit": 1},
        )
        assert cursor.fetchone() is not None
        cursor.execute("SELECT txid_current(), pg_backend_pid()")
        xid, pid = cursor.fetchone()
    killer = driver.connect(current_database_url())
    killer.autocommit = True
    with killer.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

        def gone() -> bool:
            cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
            return cursor.fetchone() is None

        wait_until(gone)
    killer.close()
    raw.close()
    return xid


@pytest.mark.django_db(transaction=True)
def test_a_claim_that_died_with_its_session_counts_one_start(accounted_queue):
    job = accounted_queue.enqueue("record")
    dead = claim_and_die()

    with transaction.atomic():
        (claimed,) = accounted_queue.claim()
        # Counted and committed before the job can run again.
        record = JobStart.objects.get(job_id=job.id)
        assert (claimed.id, claimed.starts, claimed.solo_starts) == (job.id, 1, 0)
        assert (record.starts, record.solo_starts, record.claim_xid) == (1, 0, dead)
        accounted_queue.process_job(claimed, solo=False)

    assert Effect.objects.get().job_id == job.id
    assert not JobStart.objects.filter(job_id=job.id).exists()


@pytest.mark.django_db(transaction=True)
def test_a_claim_of_several_jobs_counts_the_death_of_the_one_that_died(accounted_queue):
    ids = [accounted_queue.enqueue("record", priority=p).id for p in (3, 2, 1, 0)]
    claim_and_die()  # the best one, ids[0]

    with transaction.atomic():
        claimed = accounted_queue.claim(limit=3)
        transaction.set_rollback(True)

    assert [(job.id, job.starts) for job in claimed] == [
        (ids[0], 1),
        (ids[1], 0),
        (ids[2], 0),
    ]


def given_back_after_a_death(queue):
    """A job that died with a claim, then was claimed and given back on purpose (a suspect).

    Its start record counts the death and names the given-back claim.
    """
    job = queue.enqueue("record")
    claim_and_die()
    with transaction.atomic():
        (claimed,) = queue.claim()
        queue.give_back(claimed)
        transaction.set_rollback(True)
    return job


@pytest.mark.django_db(transaction=True)
def test_a_claim_given_back_on_purpose_is_not_counted_as_a_death(accounted_queue):
    job = given_back_after_a_death(accounted_queue)

    with transaction.atomic():
        (again,) = accounted_queue.claim()
        transaction.set_rollback(True)

    assert (again.id, again.starts) == (job.id, 1)
    assert JobStart.objects.get(job_id=job.id).starts == 1


@pytest.mark.django_db(transaction=True)
def test_a_claim_reads_the_start_counts_written_while_it_waited_for_the_row(
    accounted_queue,
):
    job = given_back_after_a_death(accounted_queue)

    # A claim whose snapshot was taken before that record was written (another worker's,
    # racing the give-back) returns no starts; the row still says another claim held it.
    with transaction.atomic():
        (row,) = sql.fetch_all(
            "default", sql.CLAIM_JOB, {"queue": "default", "exclude_ids": []}
        )
        stale = (*row[:10], 0, 0, *row[12:])
        (again,) = accounted_queue._claimed([stale])
        transaction.set_rollback(True)

    # It is still a suspect (it has starts), whose successful run clears the record.
    assert (again.id, again.starts, again.solo_starts) == (job.id, 1, 0)
    assert JobStart.objects.get(job_id=job.id).starts == 1


@pytest.mark.django_db(transaction=True)
def test_a_start_beside_other_jobs_writes_nothing_and_a_solo_start_is_written(
    accounted_queue,
):
    shared = accounted_queue.enqueue("record_starts")
    solo = accounted_queue.enqueue("record_starts")

    for expected_id, alone in ((shared.id, False), (solo.id, True)):
        with transaction.atomic():
            (job,) = accounted_queue.claim()
            assert job.id == expected_id
            accounted_queue.process_job(job, solo=alone)

    notes = dict(Effect.objects.values_list("job_id", "note"))
    assert notes == {shared.id: "0", solo.id: "1"}
    assert not JobStart.objects.exists()


@pytest.fixture
def recorder_watchdog():
    """After 20 s, keep ending crash-accounting connections so that a hang becomes a failure."""
    done = threading.Event()

    def watch():
        if done.wait(20):
            return
        raw = driver.connect(current_database_url())
        raw.autocommit = True
        try:
            while not done.wait(0.5):
                with raw.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name LIKE 'dpq:%:starts'"
                    )
        finally:
            raw.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    yield
    done.set()
    watcher.join(10)


@pytest.mark.django_db
def test_job_run_twice_in_one_outer_transaction_records_no_start(
    recorder_watchdog, caplog
):
    # As in a Django TestCase: inside the caller's transaction no start is written on the
    # crash-accounting connection, so nothing outlives that transaction or waits for it.
    q = AtLeastOnceQueue(tasks=tasks.TASKS, backoff=FixedBackoff(0), crash_limit=3)
    job = q.enqueue("fail")
    try:
        q.run_once()
        Job.objects.filter(id=job.id).update(
            execute_at=timezone.now() - datetime.timedelta(hours=1)
        )

        ran, _, exc = q.run_once()
    finally:
        q.close()

    assert ran.id == job.id
    assert isinstance(exc, ValueError)
    assert Job.objects.get().attempts == 2
    assert q._start_recorder is None
    assert not JobStart.objects.exists()
