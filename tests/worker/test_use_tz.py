"""The worker under both settings of USE_TZ, with delayed jobs and retries in the table."""

from __future__ import annotations

import datetime
import signal

import pytest
from django.utils import timezone

from dpq.models import Job
from tests.queues import worker_queue
from tests.testapp.models import Effect

WORKER_QUEUE = "tests.queues.worker_queue"
# Far above every wait below: a job that runs in time was woken by its due time, not a poll.
POLL = "60"


@pytest.fixture(
    params=["tests.worker_settings", "tests.worker_settings_naive"],
    ids=["USE_TZ=True", "USE_TZ=False"],
)
def settings_env(request) -> dict[str, str]:
    return {"DJANGO_SETTINGS_MODULE": request.param}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_delayed_job_runs_when_due_and_the_worker_keeps_running(
    worker_process, settings_env
):
    # The job due in an hour stays the next due one after the other has run.
    later = worker_queue.enqueue(
        "record", execute_at=timezone.now() + datetime.timedelta(hours=1)
    )
    due = timezone.now() + datetime.timedelta(seconds=3)
    soon = worker_queue.enqueue("record", execute_at=due)
    worker = worker_process(
        "--delay", POLL, queue=WORKER_QUEUE, threads=2, env=settings_env
    )

    worker.wait_for_log(f"Job {soon.id} (record) succeeded", timeout=30)

    assert timezone.now() >= due
    assert Effect.objects.filter(job_id=soon.id).exists()
    assert list(Job.objects.values_list("id", "attempts")) == [(later.id, 0)]
    assert worker.alive()
    worker.send(signal.SIGTERM)
    assert worker.wait_for_exit(30) == 0, worker.log
    assert "Traceback" not in worker.log


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_failing_job_is_retried_when_due_until_it_is_kept_as_failed(
    worker_process, settings_env
):
    later = worker_queue.enqueue(
        "record", execute_at=timezone.now() + datetime.timedelta(hours=1)
    )
    job = worker_queue.enqueue("fail")
    worker = worker_process(
        "--delay", POLL, queue=WORKER_QUEUE, threads=2, env=settings_env
    )

    # Three attempts, 0.5 s apart (the queue's FixedBackoff): each retry is woken on time.
    worker.wait_for_log(f"Job {job.id} (fail) failed after 3 attempt(s)", timeout=30)

    job.refresh_from_db()
    assert job.attempts == 3
    assert job.failed_at is not None
    assert Job.objects.filter(id=later.id, attempts=0).exists()
    assert worker.alive()
    worker.send(signal.SIGTERM)
    assert worker.wait_for_exit(30) == 0, worker.log
    assert "error outside a task" not in worker.log
