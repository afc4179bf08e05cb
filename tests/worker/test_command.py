"""The dpq_worker command: choosing the queue, refusing bad options, --burst and --max-jobs."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dpq.commands import Worker
from dpq.models import Job
from tests.queues import queue
from tests.testapp.management.commands.seed_worker import Command as SeedWorker
from tests.testapp.models import Effect


def test_no_queue_and_no_setting_names_both_ways_to_give_one(settings):
    if hasattr(settings, "DPQ_QUEUE"):
        del settings.DPQ_QUEUE

    with pytest.raises(CommandError, match="no queue given") as raised:
        call_command("dpq_worker")

    assert "manage.py dpq_worker myapp.queue.queue" in str(raised.value)
    assert "DPQ_QUEUE" in str(raised.value)


def test_a_dotted_path_that_does_not_import_is_refused():
    with pytest.raises(
        CommandError, match=re.escape("cannot import the queue 'tests.queues.nope'")
    ):
        call_command("dpq_worker", "tests.queues.nope")


def test_an_object_that_is_not_a_queue_is_refused():
    with pytest.raises(
        CommandError, match=re.escape("'tests.tasks.TASKS' is a dict, not a dpq Queue")
    ):
        call_command("dpq_worker", "tests.tasks.TASKS")


@pytest.mark.parametrize("command", ["dpq_worker", "seed_worker"])
def test_zero_threads_is_refused(command):
    args = ["tests.queues.queue"] if command == "dpq_worker" else []

    with pytest.raises(CommandError, match="expected a number >= 1, got 0"):
        call_command(command, *args, "--threads", "0")


def test_a_seed_style_command_gets_the_same_options():
    def options(command: Worker) -> dict[str, str | None]:
        parser = command.create_parser("manage.py", "worker")
        return {
            action.dest: action.help
            for action in parser._actions
            # QUEUE, --backend and --queue-name choose what dpq_worker runs; a subclass
            # sets its queue instead.
            if action.dest not in ("queue_path", "backend", "queue_name", "help")
        }

    from dpq.management.commands.dpq_worker import Command as DpqWorker

    assert options(SeedWorker()) == options(DpqWorker())
    assert SeedWorker().get_queue() is queue


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_seed_style_command_runs_a_pool_of_threads(worker_process):
    ids = queue.enqueue_many([("record", {}) for _ in range(20)])
    worker = worker_process("--burst", command="seed_worker", queue="", threads=3)

    assert worker.wait_for_exit(60) == 0, worker.log
    assert "3 threads" in worker.log
    assert set(Effect.objects.values_list("job_id", flat=True)) == set(ids)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_burst_exits_0_when_the_queue_is_empty(worker_process):
    worker = worker_process("--burst", threads=4)

    assert worker.wait_for_exit(60) == 0, worker.log
    assert "stopped after 0 job(s)" in worker.log


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_burst_drains_the_queue_then_exits_0(worker_process):
    ids = queue.enqueue_many([("record", {}) for _ in range(50)])
    worker = worker_process("--burst", threads=4)

    assert worker.wait_for_exit(60) == 0, worker.log
    assert set(Effect.objects.values_list("job_id", flat=True)) == set(ids)
    assert not Job.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_max_jobs_stops_after_that_many_jobs(worker_process):
    ids = queue.enqueue_many([("record", {}) for _ in range(10)])
    worker = worker_process("--max-jobs", "3", threads=4)

    assert worker.wait_for_exit(60) == 0, worker.log
    assert Effect.objects.count() == 3
    assert Job.objects.count() == 7
    assert set(Effect.objects.values_list("job_id", flat=True)) | set(
        Job.objects.values_list("id", flat=True)
    ) == set(ids)
    assert "stopped after 3 job(s)" in worker.log
