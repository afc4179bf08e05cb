"""Requeue and delete from the dashboard: what changes, what is skipped, what is said and logged."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.messages import get_messages
from django.utils import timezone

from dpq.models import Job, JobState
from tests.dashboard.conftest import url


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def post_action(client, action: str, ids, **extra):
    data = {"action": action, "ids": [str(i) for i in ids], **extra}
    return client.post(url("action"), data)


@pytest.fixture
def failed_job(make_job):
    def make(task: str = "fail", **fields) -> Job:
        fields.setdefault("failed_at", timezone.now())
        fields.setdefault("attempts", 3)
        return make_job(task, **fields)

    return make


@pytest.mark.django_db
def test_requeue_makes_failed_job_queued_and_says_so(operator_client, failed_job):
    job = failed_job()

    response = post_action(operator_client, "requeue_jobs", [job.id])

    assert response.status_code == 302
    assert said(response) == ["Requeued 1 job."]
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.attempts == 3


@pytest.mark.django_db
def test_requeue_with_reset_attempts_sets_attempts_to_zero(operator_client, failed_job):
    job = failed_job()

    response = post_action(
        operator_client, "requeue_jobs", [job.id], reset_attempts="on"
    )

    assert said(response) == ["Requeued 1 job with attempts reset."]
    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)


@pytest.mark.django_db
def test_requeue_runs_delayed_job_now(operator_client, make_job):
    job = make_job("noop", execute_at=timezone.now() + datetime.timedelta(days=1))

    post_action(operator_client, "requeue_jobs", [job.id])

    job.refresh_from_db()
    assert job.state == JobState.QUEUED


@pytest.mark.django_db
def test_requeue_writes_admin_history_of_each_job_changed(
    operator_client, failed_job, make_job
):
    job = failed_job()
    already = make_job("noop")

    response = post_action(operator_client, "requeue_jobs", [job.id, already.id])

    assert said(response) == ["Requeued 1 job; 1 job already queued."]
    entries = list(LogEntry.objects.all())
    assert [(e.object_id, e.action_flag) for e in entries] == [(str(job.id), CHANGE)]
    assert "was failed" in entries[0].change_message
    assert "failed_at cleared" in entries[0].change_message


@pytest.mark.django_db
def test_delete_asks_for_confirmation_first(operator_client, failed_job):
    job = failed_job()

    response = post_action(operator_client, "delete_jobs", [job.id])

    assert response.status_code == 200
    assert "Yes, delete" in response.content.decode()
    assert Job.objects.filter(id=job.id).exists()
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_confirmed_delete_removes_jobs_says_so_and_logs_them(
    operator_client, failed_job
):
    jobs = [failed_job(), failed_job()]

    response = post_action(
        operator_client, "delete_jobs", [j.id for j in jobs], confirm="yes"
    )

    assert said(response) == ["Deleted 2 jobs."]
    assert not Job.objects.filter(id__in=[j.id for j in jobs]).exists()
    flags = sorted((e.object_id, e.action_flag) for e in LogEntry.objects.all())
    assert flags == sorted((str(j.id), DELETION) for j in jobs)


@pytest.mark.django_db
def test_action_on_jobs_gone_says_they_no_longer_exist(operator_client, failed_job):
    job = failed_job()

    response = post_action(operator_client, "requeue_jobs", [job.id, 999999])

    assert said(response) == ["Requeued 1 job; 1 job no longer existed."]


@pytest.mark.django_db
def test_action_without_selection_changes_nothing(operator_client, failed_job):
    job = failed_job()

    response = post_action(operator_client, "requeue_jobs", [])

    assert "Select at least one job" in said(response)[0]
    job.refresh_from_db()
    assert job.state == JobState.FAILED


@pytest.mark.django_db
def test_action_with_bad_id_changes_nothing(operator_client, failed_job):
    job = failed_job()

    response = post_action(operator_client, "requeue_jobs", [job.id, "1 OR 1=1"])

    assert "must be numbers" in said(response)[0]
    job.refresh_from_db()
    assert job.state == JobState.FAILED


@pytest.mark.django_db
def test_action_returns_to_the_list_it_came_from(operator_client, failed_job):
    job = failed_job()
    back = url("failed") + "?queue=default"

    response = post_action(operator_client, "requeue_jobs", [job.id], next=back)

    assert response["Location"] == back


@pytest.mark.django_db
def test_action_never_redirects_off_site(operator_client, failed_job):
    job = failed_job()

    response = post_action(
        operator_client, "requeue_jobs", [job.id], next="https://evil.example/"
    )

    assert response["Location"] == url("changelist")


@pytest.mark.django_db(transaction=True)
def test_requeue_skips_running_job_and_says_why(
    operator_client, make_job, hold_job, failed_job
):
    running = make_job("noop")
    hold_job()
    other = failed_job()

    response = post_action(operator_client, "requeue_jobs", [running.id, other.id])

    assert said(response) == [
        "Requeued 1 job; skipped 1 running job (a worker holds its row lock until the run ends)."
    ]
    other.refresh_from_db()
    assert other.state == JobState.QUEUED
    assert [e.object_id for e in LogEntry.objects.all()] == [str(other.id)]


@pytest.mark.django_db(transaction=True)
def test_delete_skips_running_job_and_says_why(operator_client, make_job, hold_job):
    running = make_job("noop")
    hold_job()

    response = post_action(operator_client, "delete_jobs", [running.id], confirm="yes")

    assert said(response) == [
        "Deleted 0 jobs; skipped 1 running job (a worker holds its row lock until the run ends)."
    ]
    assert Job.objects.filter(id=running.id).exists()
    assert not LogEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_delete_confirmation_marks_running_job(operator_client, make_job, hold_job):
    running = make_job("noop")
    hold_job()

    response = post_action(operator_client, "delete_jobs", [running.id])

    assert "running: it will be skipped" in response.content.decode()


@pytest.mark.django_db
def test_requeue_all_failed_of_one_queue(operator_client, failed_job):
    mine = failed_job()
    other = failed_job()
    Job.objects.filter(id=other.id).update(queue="mail")

    response = operator_client.post(url("requeue_failed"), {"queue": "default"})

    assert said(response) == ["Failed jobs of queue 'default': Requeued 1 job."]
    assert Job.objects.get(id=mine.id).state == JobState.QUEUED
    assert Job.objects.get(id=other.id).state == JobState.FAILED
    entry = LogEntry.objects.get()
    assert "queue 'default'" in entry.change_message


@pytest.mark.django_db
def test_requeue_all_failed_of_one_task_resetting_attempts(operator_client, failed_job):
    mine = failed_job("fail")
    other = failed_job("record")

    operator_client.post(
        url("requeue_failed"), {"task": "fail", "reset_attempts": "on"}
    )

    mine.refresh_from_db()
    assert (mine.state, mine.attempts) == (JobState.QUEUED, 0)
    assert Job.objects.get(id=other.id).state == JobState.FAILED


@pytest.mark.django_db
def test_requeue_all_failed_refuses_unknown_queue(operator_client, failed_job):
    job = failed_job()

    response = operator_client.post(
        url("requeue_failed"), {"queue": "nope'; DROP TABLE x"}
    )

    assert "nothing was changed" in said(response)[0]
    job.refresh_from_db()
    assert job.state == JobState.FAILED
