"""The pool of a worker process: its connections, and draining a queue exactly once."""

from __future__ import annotations

import pytest

from dpq.models import Job, JobStart
from tests.conftest import wait_until
from tests.queues import queue
from tests.testapp.models import Effect
from tests.worker.conftest import HOST


def worker_after_one_job(worker_process, threads: int):
    """A worker that has run one job, and the application_name prefix of its connections."""
    job = queue.enqueue("record")
    worker = worker_process(threads=threads)
    wait_until(lambda: Effect.objects.filter(job_id=job.id).exists())
    return worker, f"dpq:default:{HOST}:{worker.pid}"


@pytest.mark.django_db(transaction=True)
def test_threads_open_one_connection_each_plus_listen(worker_process):
    worker, prefix = worker_after_one_job(worker_process, threads=4)

    expected = {f"{prefix}:t{n}" for n in range(1, 5)} | {f"{prefix}:listen"}
    wait_until(lambda: set(worker.connections()) == expected)
    assert len(set(worker.connections().values())) == 4 + 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_single_thread_opens_the_crash_accounting_connection(worker_process):
    # Every start of a one-thread worker runs alone, so each is recorded before it runs.
    worker, prefix = worker_after_one_job(worker_process, threads=1)

    expected = {f"{prefix}:t1", f"{prefix}:listen", f"{prefix}:starts"}
    wait_until(lambda: set(worker.connections()) == expected)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_processes_of_four_threads_run_each_job_exactly_once(worker_process):
    ids = queue.enqueue_many([("record", {}) for _ in range(5000)])
    workers = [worker_process("--burst", threads=4) for _ in range(2)]

    codes = [worker.wait_for_exit(180) for worker in workers]

    assert codes == [0, 0], [worker.log[-3000:] for worker in workers]
    effects = list(Effect.objects.values_list("job_id", flat=True))
    assert len(effects) == 5000
    assert set(effects) == set(ids)
    assert not Job.objects.exists()
    # Both processes took part, or this would not test two processes at all.
    for worker in workers:
        assert "succeeded in" in worker.log


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_task_whose_query_fails_is_retried_not_counted_as_a_crash(worker_process):
    job = queue.enqueue("record")
    Effect.objects.create(job_id=job.id, note="already there")
    worker = worker_process("--burst", threads=1)

    assert worker.wait_for_exit(60) == 0, worker.log

    job.refresh_from_db()
    assert (job.attempts, job.failed_at) == (1, None)
    assert "IntegrityError" in job.last_error
    assert "error outside a task" not in worker.log
    assert not JobStart.objects.exists()
