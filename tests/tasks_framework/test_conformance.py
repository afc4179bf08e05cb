"""The rules of Django's Tasks framework for a backend, checked on dpq.tasks.DpqBackend.

From Django's documentation of backends and django/tasks/backends/base.py: enqueue and
aenqueue, get_result and aget_result, refresh, validation, run_after, priority, queues,
signals, statuses, timestamps and errors. Jobs run in the test's transaction with
``queue.run_once()``, as a worker runs them.
"""

from __future__ import annotations

import datetime
import json

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.utils import timezone

from dpq.models import Job
from dpq.models import TaskResult as ResultRow
from dpq.tasks import DpqBackend
from tests.tasks_framework import tasks
from tests.tasks_framework.compat import (
    InvalidTask,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    default_task_backend,
    task,
    task_enqueued,
    task_finished,
    task_started,
)
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db


def test_the_backend_supports_every_feature(backend):
    assert isinstance(backend, DpqBackend)
    assert default_task_backend.supports_get_result
    assert backend.supports_defer
    assert backend.supports_priority
    assert backend.supports_async_task
    assert backend.supports_get_result


# --- enqueue ------------------------------------------------------------------------------


def test_enqueue_inserts_a_job_and_returns_a_ready_result(backend):
    result = tasks.add.enqueue(2, b=3)

    assert result.status == TaskResultStatus.READY
    assert result.task == tasks.add
    assert result.args == [2]
    assert result.kwargs == {"b": 3}
    assert result.backend == "default"
    assert result.enqueued_at is not None
    assert result.started_at is None and result.finished_at is None
    assert result.last_attempted_at is None
    assert result.errors == [] and result.worker_ids == [] and result.attempts == 0
    assert not result.is_finished
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value
    job = Job.objects.get(id=int(result.id))
    assert job.task == "tests.tasks_framework.tasks.add"
    assert job.queue == "tasks.default"
    assert job.args == {
        "args": [2],
        "kwargs": {"b": 3},
        "backend": "default",
        "queue_name": "default",
    }


def test_enqueue_is_part_of_the_callers_transaction(backend):
    with pytest.raises(RuntimeError), transaction.atomic():
        result = tasks.noop.enqueue()
        raise RuntimeError("roll back")

    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(result.id)
    assert not Job.objects.exists()


def test_aenqueue_and_aget_result(backend):
    result = async_to_sync(tasks.add.aenqueue)(1, 1)
    fetched = async_to_sync(tasks.add.aget_result)(result.id)
    assert fetched.status == TaskResultStatus.READY
    assert fetched.args == [1, 1]
    assert async_to_sync(backend.aget_result)(result.id).id == result.id


def test_each_enqueue_is_a_new_result(backend):
    first, second = tasks.noop.enqueue(), tasks.noop.enqueue()
    assert first.id != second.id


# --- running and results ------------------------------------------------------------------


def test_a_successful_task_has_its_return_value_and_timestamps(backend, run):
    result = tasks.add.enqueue(2, 3)

    job, retval, exc = run()

    assert exc is None
    assert job.id == int(result.id)
    assert not Job.objects.filter(id=job.id).exists()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished
    assert result.return_value == 5
    assert result.errors == []
    assert result.attempts == 1 and len(result.worker_ids) == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert retval.status == TaskResultStatus.SUCCESSFUL and retval.return_value == 5


def test_arefresh(backend, run):
    result = tasks.add.enqueue(1, 2)
    run()
    async_to_sync(result.arefresh)()
    assert result.return_value == 3


def test_a_result_keeps_its_return_value_through_refreshes(backend, run):
    result = tasks.echo.enqueue(1, k="v")
    ready = backend.get_result(result.id)
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value
    run()

    result.refresh()
    result.refresh()  # the value, once read, is kept
    async_to_sync(ready.arefresh)()
    fetched = backend.get_result(result.id)

    assert isinstance(result, TaskResult)
    expected = {"args": [1], "kwargs": {"k": "v"}}
    for each in (result, ready, fetched):
        assert each.status == TaskResultStatus.SUCCESSFUL
        assert each.return_value == expected
    assert result == fetched
    assert tasks.noop.get_result(run_noop(run).id).return_value is None


def run_noop(run):
    result = tasks.noop.enqueue()
    run()
    return result


def test_get_result_of_another_task_is_a_mismatch(backend):
    result = tasks.add.enqueue(1, 2)
    with pytest.raises(TaskResultMismatch):
        tasks.noop.get_result(result.id)
    assert tasks.add.get_result(result.id).id == result.id


@pytest.mark.parametrize(
    "bad_id", ["999999", "abc", "", "-1", "0", "1.5", "99999999999999999999", "١٢"]
)
def test_an_unknown_or_malformed_id_does_not_exist(backend, bad_id):
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(bad_id)


def test_a_classic_dpq_job_is_no_task_result(backend, make_job):
    job = make_job("noop")
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(str(job.id))


def test_a_task_that_raises_is_retried_then_failed_with_its_errors(backend, run):
    result = tasks.fails.enqueue("no luck")

    run()
    result.refresh()
    assert result.status == TaskResultStatus.READY  # one attempt left (max_attempts 2)
    assert len(result.errors) == 1 and result.attempts == 1

    run()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.is_finished
    assert len(result.errors) == 2 and result.attempts == 2
    error = result.errors[-1]
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "ValueError: no luck" in error.traceback
    assert result.finished_at is not None and result.started_at <= result.finished_at
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value
    assert Job.objects.get(id=int(result.id)).failed_at is not None


def test_a_failed_tasks_writes_are_rolled_back_and_no_success_recorded(backend, run):
    result = tasks.record_then_fail.enqueue()
    run()
    assert not Effect.objects.exists()
    assert ResultRow.objects.get(job_id=int(result.id)).status == "READY"


def test_a_successful_tasks_writes_and_result_commit_together(backend, run):
    result = tasks.record.enqueue(note="kept")
    run()
    assert Effect.objects.get(job_id=int(result.id)).note == "kept"
    row = ResultRow.objects.get(job_id=int(result.id))
    assert (row.status, row.return_value) == ("SUCCESSFUL", 1)


def test_a_return_value_json_cannot_carry_fails_at_once(backend, run):
    dated = tasks.returns_a_date.enqueue()
    keyed = tasks.returns_int_keys.enqueue()
    run()
    run()
    for result in (dated, keyed):
        result.refresh()
        assert result.status == TaskResultStatus.FAILED
        assert result.attempts == 1  # not retried: it would fail the same way
        assert "JSON" in result.errors[0].traceback
        assert result.errors[0].exception_class_path == (
            "dpq.tasks.queue.ReturnValueError"
        )


def test_a_task_whose_code_is_gone_fails_with_a_clear_error(backend, run):
    result = tasks.noop.enqueue()
    Job.objects.filter(id=int(result.id)).update(
        task="tests.tasks_framework.tasks.gone"
    )
    run()
    job = Job.objects.get(id=int(result.id))
    assert job.failed_at is not None
    assert "cannot import the task 'tests.tasks_framework.tasks.gone'" in job.last_error


# --- JSON round trip of arguments ---------------------------------------------------------


def test_args_come_back_as_json_has_them(backend, run):
    result = tasks.echo.enqueue((1, 2), b"bytes", {"k": [None, True, 1.5]}, x="y")
    assert result.args == [[1, 2], "bytes", {"k": [None, True, 1.5]}]
    run()
    result.refresh()
    assert result.return_value == {
        "args": [[1, 2], "bytes", {"k": [None, True, 1.5]}],
        "kwargs": {"x": "y"},
    }


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((datetime.date(2030, 1, 1),), TypeError),
        (({1: "int key"},), TypeError),
        ((float("nan"),), ValueError),
        (("nul \x00 char",), ValueError),
        ((object(),), TypeError),
    ],
)
def test_args_json_cannot_carry_are_refused_at_enqueue(backend, args, error):
    with pytest.raises(error):
        tasks.echo.enqueue(*args)
    assert not Job.objects.exists()


# --- validation ---------------------------------------------------------------------------


def test_a_queue_not_in_queues_is_refused(backend):
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid"):
        tasks.noop.using(queue_name="nope")


@pytest.mark.parametrize("priority", [-101, 101])
def test_a_priority_out_of_range_is_refused(backend, priority):
    with pytest.raises(InvalidTask, match="priority"):
        tasks.noop.using(priority=priority)


def test_a_naive_run_after_is_refused_under_use_tz(backend):
    with pytest.raises(InvalidTask, match="aware"):
        tasks.noop.using(run_after=datetime.datetime(2030, 1, 1))


def test_a_function_not_at_module_level_is_refused(backend):
    def local():
        pass

    with pytest.raises(InvalidTask, match="module level"):
        task(local)


def test_takes_context_needs_a_context_argument(backend):
    with pytest.raises(InvalidTask, match="context"):
        task(takes_context=True)(tasks.not_a_task)


def test_a_task_not_bound_to_its_own_name_is_refused_at_enqueue(backend):
    renamed = task(tasks.not_a_task)
    with pytest.raises(InvalidTask, match="import path"):
        renamed.enqueue()


# --- run_after, priority, queues ------------------------------------------------------------


def test_run_after_is_the_jobs_execute_at(backend, run):
    later = timezone.now() + datetime.timedelta(hours=1)
    result = tasks.noop.using(run_after=later).enqueue()

    assert Job.objects.get(id=int(result.id)).execute_at == later
    assert run() is None  # not due
    fetched = backend.get_result(result.id)
    assert fetched.status == TaskResultStatus.READY
    assert fetched.task.run_after == later


def test_higher_priority_runs_first(backend, run):
    low = tasks.noop.using(priority=-5).enqueue()
    high = tasks.noop.using(priority=50).enqueue()
    default = tasks.important.enqueue()  # the decorator's priority=10

    order = [run()[0].id for _ in range(3)]
    assert order == [int(high.id), int(default.id), int(low.id)]
    assert Job.objects.count() == 0


def test_each_queue_is_run_by_its_own_worker(backend, run):
    result = tasks.send_email.enqueue("a@example.com")
    assert Job.objects.get(id=int(result.id)).queue == "tasks.emails"

    assert run("default") is None
    run("emails")
    assert backend.get_result(result.id).return_value == "sent to a@example.com"


# --- signals and context ------------------------------------------------------------------


def test_signals_are_sent_with_the_backend_as_sender(backend, run):
    seen = []

    def receiver(signal, sender, task_result, **kwargs):
        seen.append((signal, sender, task_result.status, task_result.id))

    for signal in (task_enqueued, task_started, task_finished):
        signal.connect(receiver)
    try:
        ok = tasks.noop.enqueue()
        run()
        bad = tasks.fails.enqueue()
        run()
        run()
    finally:
        for signal in (task_enqueued, task_started, task_finished):
            signal.disconnect(receiver)

    assert [(s, st, i) for s, sender, st, i in seen if sender is DpqBackend] == [
        (task_enqueued, TaskResultStatus.READY, ok.id),
        (task_started, TaskResultStatus.RUNNING, ok.id),
        (task_finished, TaskResultStatus.SUCCESSFUL, ok.id),
        (task_enqueued, TaskResultStatus.READY, bad.id),
        (task_started, TaskResultStatus.RUNNING, bad.id),
        # a failure that will be retried is not the end of the task
        (task_started, TaskResultStatus.RUNNING, bad.id),
        (task_finished, TaskResultStatus.FAILED, bad.id),
    ]


def test_a_receiver_that_raises_changes_nothing(backend, run):
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    task_started.connect(broken)
    task_finished.connect(broken)
    try:
        result = tasks.add.enqueue(1, 1)
        run()
    finally:
        task_started.disconnect(broken)
        task_finished.disconnect(broken)
    assert backend.get_result(result.id).return_value == 2


def test_the_context_counts_dpqs_attempts(backend, run):
    result = tasks.attempts.enqueue()
    run()
    run()
    result.refresh()
    assert result.return_value == {
        "attempt": 2,
        "id": result.id,
        "worker_ids": 2,
        "errors": 1,
    }
    assert result.attempts == 2


def test_an_async_task_runs_in_the_jobs_transaction(backend, run):
    result = tasks.async_record.enqueue("from a coroutine")
    run()
    assert backend.get_result(result.id).return_value == "async from a coroutine"
    assert Effect.objects.get().note == "from a coroutine"


# --- options and construction ------------------------------------------------------------


def test_unknown_options_are_refused():
    from dpq.tasks.compat import InvalidTaskBackend

    with pytest.raises(InvalidTaskBackend, match="unknown keys \\['max_attempt'\\]"):
        DpqBackend("x", {"OPTIONS": {"max_attempt": 3}})
    with pytest.raises(InvalidTaskBackend, match="result_retention"):
        DpqBackend("x", {"OPTIONS": {"result_retention": "a week"}})
    with pytest.raises(InvalidTaskBackend, match="crash_limit"):
        DpqBackend("x", {"OPTIONS": {"crash_limit": 0}})


def test_retry_policies_override_per_task(backend, run, settings):
    from dpq.retry import FixedBackoff, RetryPolicy

    policy = RetryPolicy(1, backoff=FixedBackoff(0))
    custom = DpqBackend(
        "default",
        {
            "QUEUES": ["default"],
            "OPTIONS": {
                "retry_policies": {"tests.tasks_framework.tasks.fails": policy}
            },
        },
    )
    result = tasks.fails.enqueue()
    custom.queue("default").run_once()
    assert custom.get_result(result.id).status == TaskResultStatus.FAILED
    custom.queue("default").close()


def test_prune_forgets_old_results_but_keeps_failed_jobs(backend, run):
    from django.core.management import call_command

    done = tasks.noop.enqueue()
    run()
    failed = tasks.fails.enqueue()
    run()
    run()
    ResultRow.objects.update(finished_at=timezone.now() - datetime.timedelta(days=8))
    fresh = tasks.noop.enqueue()
    run()

    call_command("dpq_prune_task_results")

    assert set(ResultRow.objects.values_list("job_id", flat=True)) == {
        int(failed.id),
        int(fresh.id),
    }
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(done.id)


def test_results_are_stored_as_json_rows(backend, run):
    result = tasks.add.enqueue(20, 22)
    run()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT return_value::text, args::text FROM dpq_taskresult WHERE job_id = %s",
            [int(result.id)],
        )
        value, args = cursor.fetchone()
    assert json.loads(value) == 42 and json.loads(args) == [20, 22]
