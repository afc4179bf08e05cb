"""dpq.commands.Worker keeps the original package's methods: run_available_tasks(), wait(),
handle_shutdown(), and the attributes they use (queue, logger, delay, listen)."""

from __future__ import annotations

import signal
import time

import pytest
from django.db import connection

from dpq.commands import Worker
from dpq.models import Job
from tests.testapp.models import Effect


@pytest.fixture
def command(queue):
    class Command(Worker):
        pass

    Command.queue = queue
    return Command()


@pytest.mark.django_db
def test_worker_run_available_tasks_runs_every_ready_job(command, make_job):
    jobs = [make_job("record") for _ in range(3)]

    command.run_available_tasks()

    assert sorted(Effect.objects.values_list("job_id", flat=True)) == [
        job.id for job in jobs
    ]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_worker_run_available_tasks_goes_on_after_a_failing_job(command, make_job):
    failing = make_job("fail")
    ok = make_job("record")

    command.run_available_tasks()

    assert list(Effect.objects.values_list("job_id", flat=True)) == [ok.id]
    assert Job.objects.get().id == failing.id
    assert Job.objects.get().attempts == 1


@pytest.mark.django_db
def test_worker_run_available_tasks_does_not_claim_a_failed_job_again(
    command, make_job, monkeypatch
):
    failing = make_job("fail")
    claimed = []
    run_once = command.queue.run_once

    def spy(exclude_ids=()):
        claimed.append(set(exclude_ids))
        return run_once(exclude_ids=exclude_ids)

    monkeypatch.setattr(command.queue, "run_once", spy)

    command.run_available_tasks()

    assert claimed == [set(), {failing.id}]


@pytest.mark.django_db
def test_worker_run_available_tasks_stops_after_the_job_once_shutdown_was_asked(
    command, make_job
):
    make_job("record")
    make_job("record")
    command.queue.tasks = {
        **command.queue.tasks,
        "record": lambda queue, job: command.handle_shutdown(signal.SIGTERM, None),
    }

    with pytest.raises(InterruptedError):
        command.run_available_tasks()

    assert Job.objects.count() == 1


def test_worker_handle_shutdown_outside_a_task_raises_interrupted_error(command):
    with pytest.raises(InterruptedError):
        command.handle_shutdown(signal.SIGTERM, None)


def test_worker_handle_shutdown_in_a_task_asks_to_stop_after_it(command, caplog):
    command._in_task = True

    command.handle_shutdown(signal.SIGTERM, None)

    assert command._shutdown is True
    assert "Waiting for active tasks to finish..." in caplog.text


def test_worker_wait_without_listen_sleeps_delay_and_returns_1(command):
    command.listen = False
    command.delay = 0.2
    started = time.monotonic()

    assert command.wait() == 1
    assert time.monotonic() - started >= 0.2


@pytest.mark.django_db(transaction=True)
def test_worker_wait_with_listen_returns_the_number_of_notifications(command):
    command.listen = True
    command.delay = 10
    command.queue.listen()
    command.queue.notify()

    assert command.wait() == 1
    connection.close()


def test_worker_keeps_the_original_class_attributes():
    assert Worker.queue is None
    assert Worker.logger.name == "dpq.commands"
