"""DpqBackend with real workers: RUNNING seen from outside, dpq_worker --backend, kill -9."""

from __future__ import annotations

import signal
import threading

import pytest
from django.db import connection

from dpq.models import Job
from dpq.models import TaskResult as ResultRow
from dpq.tasks import DpqBackend
from tests.conftest import start_thread, wait_until
from tests.tasks_framework import tasks
from tests.tasks_framework.compat import TaskResultStatus
from tests.testapp.models import Effect
from tests.worker.conftest import claimed_when_the_worker_died


@pytest.mark.django_db(transaction=True)
def test_a_running_task_is_running_and_the_probe_never_waits(backend, gate):
    result = tasks.gated.enqueue()
    queue = backend.queue("default")
    thread = start_thread(queue.run_once)
    assert tasks.ENTERED.wait(30)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        running = backend.get_result(result.id)
        assert running.status == TaskResultStatus.RUNNING
        assert running.started_at is not None
        assert running.last_attempted_at == running.started_at
        assert len(running.worker_ids) == 1 and running.attempts == 1
        # Reading it wrote nothing: the row's xmax is still the claim's.
        assert Job.objects.filter(id=int(result.id)).exists()
    finally:
        gate.set()
        thread.join(30)
        queue.close()
    assert thread.error is None
    assert backend.get_result(result.id).return_value == "through"


@pytest.mark.django_db(transaction=True)
def test_each_result_names_the_thread_that_ran_it(backend):
    queue = backend.queue("default")
    ids = [tasks.whoami.enqueue().id for _ in range(3)]
    names = ["first", "second", "third"]

    def run_one() -> None:
        try:
            queue.run_once()
        finally:
            connection.close()

    try:
        # One after the other: the jobs run in the order they were enqueued.
        for name in names:
            thread = threading.Thread(target=run_one, name=name)
            thread.start()
            thread.join(30)
        for result_id, name in zip(ids, names, strict=True):
            result = backend.get_result(result_id)
            assert result.return_value.endswith(f":{name}")
            # host:pid:thread, as the thread itself saw its pid and name.
            assert result.worker_ids[0].endswith(f":{result.return_value}")
    finally:
        queue.close()


def test_building_the_backend_touches_no_database():
    # No django_db mark: any query fails this test.
    backend = DpqBackend(
        "elsewhere",
        {
            "QUEUES": ["default", "a"],
            "OPTIONS": {"database": "default", "max_attempts": 5},
        },
    )
    backend.validate_task(tasks.noop)
    assert backend.queue("a").name == "tasks.a"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_dpq_worker_backend_runs_its_queue_only(worker_process):
    ids = [tasks.record.enqueue(note=str(n)).id for n in range(50)]
    email = tasks.send_email.enqueue("b@example.com")

    worker = worker_process("--backend", "default", "--burst", queue=None, threads=4)
    assert worker.wait_for_exit() == 0, worker.log[-3000:]

    assert Effect.objects.count() == 50
    statuses = set(
        ResultRow.objects.filter(job_id__in=[int(i) for i in ids]).values_list(
            "status", flat=True
        )
    )
    assert statuses == {"SUCCESSFUL"}
    assert Job.objects.get(id=int(email.id)).queue == "tasks.emails"

    mailer = worker_process(
        "--backend",
        "default",
        "--queue-name",
        "emails",
        "--burst",
        queue=None,
        threads=1,
    )
    assert mailer.wait_for_exit() == 0, mailer.log[-3000:]
    assert tasks.send_email.get_result(email.id).return_value == "sent to b@example.com"
    assert not Job.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_kill_9_mid_task_the_effect_happens_once_and_the_result_is_right(
    worker_process, backend
):
    result = tasks.slow_record.enqueue()
    worker = worker_process(
        "--backend",
        "default",
        queue=None,
        threads=4,
        env={"DPQ_TEST_TASK_SLEEP": "60"},
    )
    wait_until(
        lambda: backend.get_result(result.id).status == TaskResultStatus.RUNNING, 30
    )
    worker.kill()
    assert worker.popen.returncode == -signal.SIGKILL
    # PostgreSQL rolls the dead worker's claim back once its session sees the socket
    # closed: until then the row is still locked, and RUNNING is what it is.
    wait_until(lambda: not worker.connections(), 30)

    after_kill = backend.get_result(result.id)
    assert after_kill.status == TaskResultStatus.READY
    assert not Effect.objects.exists()  # its write died with the transaction
    # Crash accounting sees the dead claim, as for a classic job.
    assert int(result.id) in claimed_when_the_worker_died()

    again = worker_process("--backend", "default", "--burst", queue=None, threads=4)
    assert again.wait_for_exit() == 0, again.log[-3000:]

    assert Effect.objects.filter(job_id=int(result.id)).count() == 1
    final = backend.get_result(result.id)
    assert final.status == TaskResultStatus.SUCCESSFUL
    assert final.return_value == 1  # the crash is no failed attempt
    assert final.errors == []
