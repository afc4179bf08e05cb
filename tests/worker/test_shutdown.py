"""Stopping a worker: SIGTERM lets the running job finish, a second signal exits at once."""

from __future__ import annotations

import signal

import pytest

from dpq.models import Job
from tests.conftest import wait_until
from tests.queues import worker_queue
from tests.testapp.models import Effect
from tests.worker.conftest import assert_each_job_ran_once_or_is_back, fetch, storm


@pytest.fixture
def held_job(tmp_path):
    """Factory: enqueue a wait_for_file job; returns (job, started_path, release_path)."""

    def make():
        started = tmp_path / "started"
        release = tmp_path / "release"
        job = worker_queue.enqueue(
            "wait_for_file", {"started": str(started), "release": str(release)}
        )
        return job, started, release

    return make


def claimable(job_id: int) -> bool:
    """True once no session holds the job's row: it is back in the queue, free to claim."""
    return bool(
        fetch("SELECT id FROM dpq_job WHERE id = %s FOR UPDATE SKIP LOCKED", [job_id])
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_the_running_job_finish_and_claims_nothing_new(
    worker_process, held_job
):
    job, started, release = held_job()
    worker = worker_process(queue="tests.queues.worker_queue", threads=2)
    wait_until(started.exists)

    worker.send(signal.SIGTERM)
    worker.wait_for_log("Received SIGTERM")
    later = worker_queue.enqueue_many([("record", {}) for _ in range(3)])
    release.touch()
    code = worker.wait_for_exit(60)

    assert code == 0, worker.log
    assert Effect.objects.filter(job_id=job.id).exists()
    assert not Job.objects.filter(id=job.id).exists()
    assert set(Job.objects.values_list("id", flat=True)) == set(later)
    assert not Effect.objects.filter(job_id__in=later).exists()
    assert Job.objects.filter(attempts=0, failed_at__isnull=True).count() == 3


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_second_signal_exits_at_once_and_the_job_returns_to_the_queue(
    worker_process, held_job
):
    job, started, _ = held_job()
    worker = worker_process(
        "--grace", "60", queue="tests.queues.worker_queue", threads=2
    )
    wait_until(started.exists)

    worker.send(signal.SIGTERM)
    worker.wait_for_log("Received SIGTERM")
    worker.send(signal.SIGTERM)
    # The task would wait 60 s for its release file, and the grace period is 60 s too.
    code = worker.wait_for_exit(20)

    assert code == 1
    assert "exiting at once" in worker.log
    wait_until(lambda: claimable(job.id))
    job.refresh_from_db()
    assert (job.attempts, job.failed_at) == (0, None)
    assert not Effect.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", range(5))
def test_a_storm_of_stop_signals_always_ends_in_a_clean_exit(worker_process, seed):
    ids = worker_queue.enqueue_many(
        [("slow_record", {"seconds": 0.005}) for _ in range(2000)]
    )
    worker = worker_process(
        "--grace", "3", queue="tests.queues.worker_queue", threads=4
    )
    worker.wait_for_log("succeeded in")

    sent = storm(worker, seed, stop_text="dpq worker stopped")
    # --grace plus a few seconds, on a noisy machine.
    code = worker.wait_for_exit(3 + 15)

    assert sent >= 1
    assert "Received SIG" in worker.log
    # Exit at once (1) on a second signal, or a warm stop (0) that beat it.
    assert code == (1 if "exiting at once" in worker.log else 0), worker.log[-3000:]
    assert "Traceback" not in worker.log
    assert "Logging error" not in worker.log
    wait_until(worker.gone_from_database)
    assert_each_job_ran_once_or_is_back(ids)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_main_thread_is_stuck_exits_1_soon_after_grace(
    worker_process, tmp_path
):
    bug = tmp_path / "bug"
    worker = worker_process(
        "--grace",
        "1",
        "--delay",
        "0.2",
        queue="tests.queues.dispatcher_bug_queue",
        threads=2,
        env={"DPQ_TEST_DISPATCHER_BUG": str(bug)},
    )
    worker.wait_for_log("Worker thread t2 is idle")
    bug.write_text("hang")  # the next due-check never returns
    wait_until(lambda: bug.read_text() == "hanging")

    worker.send(signal.SIGTERM)
    # --grace 1, the 5 s margin, and a few seconds for a noisy machine.
    code = worker.wait_for_exit(1 + 5 + 10)

    assert code == 1, worker.log
    assert (
        "The worker has not stopped 6.0s after the signal (--grace 1.0s)" in worker.log
    )
    assert "Traceback" not in worker.log
    wait_until(worker.gone_from_database)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["grace over", "second signal"])
def test_jobs_a_stopped_worker_leaves_running_are_not_counted_as_crashes(
    worker_process, held_job, how
):
    job, started, release = held_job()
    worker = worker_process(
        "--grace", "1", queue="tests.queues.worker_queue", threads=2
    )
    wait_until(started.exists)

    worker.send(signal.SIGTERM)
    worker.wait_for_log("Received SIGTERM")
    if how == "second signal":
        worker.send(signal.SIGTERM)
    assert worker.wait_for_exit(30) == 1, worker.log
    # Not claimable(): its lock would commit over the evidence the next claim reads.
    wait_until(worker.gone_from_database)
    release.touch()
    again = worker_process("--burst", queue="tests.queues.worker_queue", threads=2)

    assert again.wait_for_exit(60) == 0, again.log
    assert "was running when a worker died" not in again.log
    assert Effect.objects.filter(job_id=job.id).exists()
    assert not Job.objects.exists()
