"""Worker subclasses that override the original package's methods, run as real processes."""

from __future__ import annotations

import signal

import pytest

from dpq.models import Job
from tests.conftest import wait_until
from tests.queues import worker_queue
from tests.testapp.models import Effect

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def start(worker_process, command: str, *args: str):
    return worker_process(*args, command=command, queue="", threads=None)


def test_an_overridden_handle_shutdown_is_called_on_sigterm_and_stops_the_pool(
    worker_process, tmp_path
):
    started, release = tmp_path / "started", tmp_path / "release"
    worker_queue.enqueue(
        "wait_for_file", {"started": str(started), "release": str(release)}
    )
    worker = start(worker_process, "shutdown_hook_worker")
    wait_until(started.exists)

    worker.send(signal.SIGTERM)
    worker.wait_for_log("handle_shutdown got SIGTERM")
    worker.wait_for_log("no new jobs are claimed")
    release.touch()

    assert worker.wait_for_exit() == 0, worker.log
    assert Effect.objects.count() == 1
    assert not Job.objects.exists()


def test_an_overridden_handle_shutdown_that_returns_keeps_the_pool_running(
    worker_process, tmp_path
):
    worker = start(worker_process, "shutdown_hook_worker")
    worker.wait_for_log("dpq worker started")

    worker.send(signal.SIGINT)
    worker.wait_for_log("Received SIGINT; the worker command asked to go on")
    job = worker_queue.enqueue("record")
    wait_until(lambda: Effect.objects.filter(job_id=job.id).exists())
    worker.send(signal.SIGTERM)

    assert worker.wait_for_exit() == 0, worker.log
    assert "handle_shutdown got SIGINT" in worker.log


def test_an_overridden_run_available_tasks_runs_in_the_original_loop(worker_process):
    ids = worker_queue.enqueue_many([("record", {}) for _ in range(5)])
    worker = start(worker_process, "loop_worker", "--burst")

    assert worker.wait_for_exit() == 0, worker.log
    assert "the original loop of tests.testapp.management.commands.loop_worker" in (
        worker.log
    )
    assert "drained the queue" in worker.log
    assert set(Effect.objects.values_list("job_id", flat=True)) == set(ids)


def test_the_original_loop_stops_on_sigterm_while_waiting(worker_process):
    worker = start(worker_process, "loop_worker", "--delay", "0.2")
    worker.wait_for_log("drained the queue", count=2)

    worker.send(signal.SIGTERM)

    assert worker.wait_for_exit() == 0, worker.log
    assert "dpq worker stopped" in worker.log


def test_the_original_loop_lets_the_running_job_finish_after_sigterm(
    worker_process, tmp_path
):
    started, release = tmp_path / "started", tmp_path / "release"
    worker_queue.enqueue(
        "wait_for_file", {"started": str(started), "release": str(release)}
    )
    worker_queue.enqueue("record")
    worker = start(worker_process, "loop_worker")
    wait_until(started.exists)

    worker.send(signal.SIGTERM)
    worker.wait_for_log("Waiting for active tasks to finish...")
    release.touch()

    assert worker.wait_for_exit() == 0, worker.log
    # Stopped after the running job: the second one is still queued.
    assert Effect.objects.count() == 1
    assert Job.objects.get().task == "record"


def test_the_original_loop_refuses_threads(worker_process):
    worker = worker_process(command="loop_worker", queue="", threads=2)

    assert worker.wait_for_exit() == 1
    assert "overrides run_available_tasks() or wait()" in worker.log
    assert "--threads need the thread pool" in worker.log


def test_the_original_loop_stops_after_max_jobs(worker_process):
    worker_queue.enqueue_many([("record", {}) for _ in range(5)])
    worker = start(worker_process, "loop_worker", "--max-jobs", "2")

    assert worker.wait_for_exit() == 0, worker.log
    assert Effect.objects.count() == 2
    assert Job.objects.count() == 3
