"""The original package's README still works as written (tests/seedapp holds its code)."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from dpq.models import Job
from tests.seedapp.queue import queue


@pytest.fixture(autouse=True)
def _close_seed_queue():
    yield
    queue.close()


@pytest.mark.django_db
def test_seed_readme_enqueue_and_run_once_runs_debug_task(capsys):
    queue.enqueue("debug_task", {"some_args": 0})

    job, retval, exc = queue.run_once()

    assert capsys.readouterr().out == "{'some_args': 0}\n"
    assert (job.task, job.args, retval, exc) == (
        "debug_task",
        {"some_args": 0},
        None,
        None,
    )
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_seed_readme_job_args_are_the_enqueued_json_value():
    queue.enqueue("debug_task", {"some_args": 0})

    assert Job.objects.get().args == {"some_args": 0}


@pytest.mark.django_db(transaction=True)
def test_seed_readme_enqueue_notifies_my_queue():
    queue.listen()

    queue.enqueue("debug_task", {"some_args": 0})

    assert [n.channel for n in queue.wait(timeout=10)] == ["my-queue"]
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_seed_readme_worker_command_processes_the_job_and_exits_in_burst_mode(capsys):
    queue.enqueue("debug_task", {"some_args": 0})

    call_command("worker", "--burst")

    assert "{'some_args': 0}\n" in capsys.readouterr().out
    assert Job.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_seed_readme_worker_command_accepts_delay_and_listen(capsys):
    queue.enqueue("debug_task", {"some_args": 1})

    call_command("worker", "--burst", "--delay", "0.1", "--listen")

    assert "{'some_args': 1}\n" in capsys.readouterr().out
    assert Job.objects.count() == 0


SEED_MONITORING_QUERY = "SELECT count(*) FROM dpq_job WHERE execute_at <= now()"


def seed_monitoring_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(SEED_MONITORING_QUERY)
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_seed_monitoring_query_counts_ready_and_running_jobs_not_delayed_ones(
    other_connection,
):
    for n in range(3):
        queue.enqueue("debug_task", {"n": n})
    queue.enqueue(
        "debug_task", {}, execute_at=timezone.now() + datetime.timedelta(hours=1)
    )
    # Another worker's open claim: the job is running, its DELETE not yet committed.
    with other_connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM dpq_job WHERE id = (SELECT id FROM dpq_job "
            "WHERE execute_at <= now() ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)"
        )

    count = seed_monitoring_count()

    other_connection.rollback()
    assert count == 3


@pytest.mark.django_db
def test_seed_monitoring_query_also_counts_failed_jobs_as_the_readme_warns():
    queue.enqueue("debug_task", {})
    Job.objects.update(failed_at=timezone.now())

    assert seed_monitoring_count() == 1
    with connection.cursor() as cursor:
        cursor.execute(SEED_MONITORING_QUERY + " AND failed_at IS NULL")
        assert cursor.fetchone() == (0,)


@pytest.mark.django_db(transaction=True)
def test_pgrowlocks_shows_a_claimed_job_with_mode_update_not_for_update(
    other_connection,
):
    # The seed counted running jobs with 'For Update' = ANY(modes); a claim is a DELETE,
    # which pgrowlocks reports as 'Update': the README says to count any mode.
    job = queue.enqueue("debug_task", {})
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pgrowlocks")
    with other_connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM dpq_job WHERE id = (SELECT id FROM dpq_job "
            "FOR UPDATE SKIP LOCKED LIMIT 1)"
        )

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT j.id, l.modes FROM pgrowlocks('dpq_job') l "
            "JOIN dpq_job j ON j.ctid = l.locked_row"
        )
        rows = cursor.fetchall()

    other_connection.rollback()
    assert rows == [(job.id, ["Update"])]
