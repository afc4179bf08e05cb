"""An unexpected error in the worker itself: logged, the pool stopped, exit code 1.

Only a lost connection is something the worker knows how to carry on from; any other error
in the dispatcher or escaping a worker thread stops the process, so that its supervisor
(systemd, Kubernetes, --processes) starts a fresh one.
"""

from __future__ import annotations

import pytest

from dpq.models import Job
from tests.conftest import wait_until
from tests.queues import dispatcher_bug_queue, worker_queue
from tests.testapp.models import Effect


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_error_in_the_dispatcher_lets_the_running_job_finish_then_exits_1(
    worker_process, tmp_path
):
    started, release, bug = (tmp_path / n for n in ("started", "release", "bug"))
    job = dispatcher_bug_queue.enqueue(
        "wait_for_file", {"started": str(started), "release": str(release)}
    )
    worker = worker_process(
        "--delay",
        "0.2",
        queue="tests.queues.dispatcher_bug_queue",
        threads=2,
        env={"DPQ_TEST_DISPATCHER_BUG": str(bug)},
    )
    wait_until(started.exists)

    bug.touch()
    worker.wait_for_log("The dispatcher failed")
    later = dispatcher_bug_queue.enqueue("record")
    release.touch()
    code = worker.wait_for_exit(60)

    assert code == 1, worker.log
    assert "RuntimeError: a bug in the dispatcher" in worker.log
    assert Effect.objects.filter(job_id=job.id).exists()
    assert list(Job.objects.values_list("id", "attempts")) == [(later.id, 0)]
    assert "dpq worker stopped after 1 job(s)" in worker.log


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_thread_killed_by_system_exit_stops_the_worker_with_exit_1(
    worker_process,
):
    job = worker_queue.enqueue("raise_system_exit")
    worker = worker_process(queue="tests.queues.worker_queue", threads=2)

    code = worker.wait_for_exit(30)

    assert code == 1, worker.log
    assert "Worker thread t1 stopped by an unexpected error" in worker.log or (
        "Worker thread t2 stopped by an unexpected error" in worker.log
    )
    assert "SystemExit: 3" in worker.log
    # Its claim rolled back: the job is back, and its next claim counts the death.
    assert list(Job.objects.values_list("id", "attempts")) == [(job.id, 0)]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_failing_on_commit_callback_is_logged_and_the_thread_goes_on(worker_process):
    first = worker_queue.enqueue("record_then_fail_on_commit")
    second = worker_queue.enqueue("record")
    worker = worker_process("--burst", queue="tests.queues.worker_queue", threads=1)

    assert worker.wait_for_exit() == 0, worker.log
    assert f"on_commit callback raised after the claim of job(s) {first.id}" in (
        worker.log
    )
    assert "error outside a task" not in worker.log
    assert set(Effect.objects.values_list("job_id", flat=True)) == {first.id, second.id}
