"""A worker thread in this process: a job's commit held for the next claim, and the solo gate."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from dpq.threads import WorkerThread
from dpq.worker import WorkerOptions, WorkerPool
from tests.conftest import wait_until
from tests.queues import queue
from tests.testapp.models import Effect


def job_row_visible(other_connection, job_id: int) -> bool:
    """Whether another session still sees the job's row: its removal is not committed."""
    other_connection.rollback()
    with other_connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM dpq_job WHERE id = %s", [job_id])
        return cursor.fetchone() is not None


@pytest.fixture
def worker_thread():
    pool = WorkerPool(queue, WorkerOptions(threads=2, burst=True))
    thread = WorkerThread(pool, 1)
    yield thread
    thread.commit_held_job()
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_jobs_commit_goes_with_the_next_claim(worker_thread, other_connection):
    first = queue.enqueue("record")

    assert worker_thread.run_one()
    assert job_row_visible(other_connection, first.id)  # ran, commit held
    assert worker_thread.holds_gate

    assert not worker_thread.run_one()  # the empty claim carries the commit
    assert not job_row_visible(other_connection, first.id)
    assert not worker_thread.holds_gate
    assert Effect.objects.filter(job_id=first.id).exists()


@pytest.mark.django_db(transaction=True)
def test_a_suspect_runs_alone_only_after_the_last_jobs_commit(
    worker_thread, other_connection
):
    first = queue.enqueue("record")
    second = queue.enqueue("record")
    assert worker_thread.run_one()
    seen_by_suspect: list[bool] = []

    def suspect() -> None:
        with worker_thread.pool.gate.exclusive():
            seen_by_suspect.append(job_row_visible(other_connection, first.id))

    suspect_thread = threading.Thread(target=suspect)
    suspect_thread.start()
    wait_until(worker_thread.pool.gate.exclusive_waiting)
    # The suspect waits for the gate this thread holds with the first job's commit.
    assert suspect_thread.is_alive()

    assert worker_thread.run_one()  # commits the first job, waits for the suspect, runs
    suspect_thread.join(30)

    assert seen_by_suspect == [False]
    worker_thread.commit_held_job()
    assert not worker_thread.holds_gate
    assert not job_row_visible(other_connection, second.id)
    assert Effect.objects.filter(job_id__in=[first.id, second.id]).count() == 2
