"""Edit a failed or delayed job and requeue it, run a job again: from the dashboard and in code."""

from __future__ import annotations

import datetime
import json

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.utils import timezone

from dpq import controls, exceptions
from dpq.models import PRIORITY_MAX, Job, JobState
from dpq_admin.controls import args_digest
from dpq_admin.redact import MASK
from tests.dashboard.conftest import url


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def failed_job(make_job):
    def make(task: str = "fail", args=None, **fields) -> Job:
        fields.setdefault("failed_at", timezone.now())
        fields.setdefault("attempts", 3)
        return make_job(task, args, **fields)

    return make


def edit(client, job, *, args=None, text=None, **fields):
    data = {
        "args": text if text is not None else json.dumps(args),
        "priority": "0",
        "execute_at": "",
        "digest": args_digest(Job.objects.get(pk=job.pk).args),
        **fields,
    }
    return client.post(url("edit", job.pk), data)


@pytest.mark.django_db
def test_edit_form_shows_masked_args_and_priority(operator_client, failed_job):
    job = failed_job(args={"to": "a@example.com", "password": "hunter22"}, priority=7)

    page = operator_client.get(url("edit", job.pk)).content.decode()

    assert MASK in page and "hunter22" not in page
    assert "a@example.com" in page and 'value="7"' in page


@pytest.mark.django_db
def test_edit_requeues_failed_job_with_new_args_priority_and_time(
    operator_client, failed_job
):
    job = failed_job(args={"n": 1})
    later = timezone.now() + datetime.timedelta(hours=2)

    response = edit(
        operator_client,
        job,
        args={"n": 2},
        priority="5",
        execute_at=later.strftime("%Y-%m-%d %H:%M:%S"),
    )

    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.args, job.priority, job.failed_at, job.attempts) == (
        {"n": 2},
        5,
        None,
        3,
    )
    assert job.state == JobState.DELAYED
    assert abs((job.execute_at - later).total_seconds()) < 1
    assert "edited and requeued (was failed)" in said(response)[0]
    entry = LogEntry.objects.get(object_id=str(job.pk))
    assert entry.action_flag == CHANGE and "Edited and requeued" in entry.change_message


@pytest.mark.django_db
def test_edit_with_empty_time_runs_now_and_can_reset_attempts(
    operator_client, failed_job
):
    job = failed_job()

    edit(operator_client, job, args={}, reset_attempts="on")

    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)


@pytest.mark.django_db
def test_edit_keeps_masked_secret_unless_replaced(operator_client, failed_job):
    job = failed_job(args={"password": "hunter22", "nested": {"api_key": "k-123456"}})

    edit(
        operator_client,
        job,
        args={"password": MASK, "nested": {"api_key": "new-key-1"}, "extra": 1},
    )

    job.refresh_from_db()
    assert job.args == {
        "password": "hunter22",
        "nested": {"api_key": "new-key-1"},
        "extra": 1,
    }


@pytest.mark.django_db
def test_edit_refuses_mask_moved_to_a_key_without_secret(operator_client, failed_job):
    job = failed_job(args={"password": "hunter22"})

    response = edit(operator_client, job, args={"passwd_copy": MASK})

    assert response.status_code == 200
    assert "still contain" in response.content.decode()
    job.refresh_from_db()
    assert job.args == {"password": "hunter22"} and job.failed_at is not None


@pytest.mark.django_db
def test_edit_with_bad_json_says_so_and_changes_nothing(operator_client, failed_job):
    job = failed_job(args={"n": 1})

    response = edit(operator_client, job, text='{"n": 1,,}')

    assert response.status_code == 200
    assert "This is not valid JSON" in response.content.decode()
    job.refresh_from_db()
    assert job.args == {"n": 1} and job.failed_at is not None


@pytest.mark.parametrize("priority", [str(PRIORITY_MAX + 1), "-99999999999", "high"])
@pytest.mark.django_db
def test_edit_refuses_priority_out_of_range(operator_client, failed_job, priority):
    job = failed_job()

    response = edit(operator_client, job, args={}, priority=priority)

    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    job.refresh_from_db()
    assert job.failed_at is not None


@pytest.mark.django_db
def test_edit_refuses_args_changed_since_the_form_opened(operator_client, failed_job):
    job = failed_job(args={"n": 1})
    digest = args_digest(job.args)
    Job.objects.filter(pk=job.pk).update(args={"n": 9})

    response = operator_client.post(
        url("edit", job.pk),
        {"args": "{}", "priority": "0", "execute_at": "", "digest": digest},
    )

    assert "changed since this form was opened" in response.content.decode()
    job.refresh_from_db()
    assert job.args == {"n": 9}


@pytest.mark.django_db
def test_edit_refuses_queued_job(operator_client, make_job):
    job = make_job("noop", {"n": 1})

    response = edit(operator_client, job, args={"n": 2})

    assert "is queued" in response.content.decode()
    job.refresh_from_db()
    assert job.args == {"n": 1}


@pytest.mark.django_db(transaction=True)
def test_edit_of_running_job_says_so_without_waiting(
    operator_client, make_job, lock_job, no_lock_wait
):
    job = make_job("noop", {"n": 1}, failed_at=timezone.now())
    holder = lock_job(job)

    response = edit(operator_client, job, args={"n": 2})

    assert "is running (a worker holds its row lock)" in response.content.decode()
    holder.release()
    job.refresh_from_db()
    assert job.args == {"n": 1} and job.failed_at is not None


@pytest.mark.django_db
def test_edit_needs_requeue_permission(viewer_client, failed_job):
    job = failed_job()

    assert viewer_client.get(url("edit", job.pk)).status_code == 403
    assert edit(viewer_client, job, args={}).status_code == 403
    job.refresh_from_db()
    assert job.failed_at is not None


@pytest.mark.django_db
def test_edit_of_missing_job_redirects_with_message(operator_client):
    response = operator_client.get(url("edit", 999999))

    assert response.status_code == 302
    assert "does not exist" in said(response)[0]


@pytest.mark.django_db
def test_run_again_enqueues_a_copy_now_and_logs_both(operator_client, failed_job):
    job = failed_job("fail", {"n": 1}, priority=4)

    response = operator_client.post(url("run_again", job.pk))

    copy = Job.objects.exclude(pk=job.pk).get()
    assert response.status_code == 302 and response.url == url("job", copy.pk)
    assert (copy.task, copy.args, copy.priority, copy.queue) == (
        "fail",
        {"n": 1},
        4,
        job.queue,
    )
    assert (copy.state, copy.attempts) == (JobState.QUEUED, 0)
    assert Job.objects.get(pk=job.pk).failed_at is not None
    flags = set(LogEntry.objects.values_list("object_id", "action_flag"))
    assert flags == {(str(job.pk), CHANGE), (str(copy.pk), ADDITION)}
    assert f"a copy of job {job.pk}" in said(response)[0]


@pytest.mark.django_db(transaction=True)
def test_run_again_copies_a_running_job_without_waiting(
    operator_client, make_job, hold_job, no_lock_wait
):
    job = make_job("noop", {"n": 1})
    holder = hold_job()

    response = operator_client.post(url("run_again", job.pk))

    assert response.status_code == 302
    holder.release()
    assert Job.objects.filter(args={"n": 1}).exclude(pk=job.pk).count() == 1


@pytest.mark.django_db
def test_run_again_is_post_only_and_needs_permission(
    operator_client, viewer_client, failed_job
):
    job = failed_job()

    assert operator_client.get(url("run_again", job.pk)).status_code == 405
    assert viewer_client.post(url("run_again", job.pk)).status_code == 403
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_run_again_notifies_the_channel_of_a_scheduled_queue(queue, make_job):
    from dpq.models import ScheduleState

    ScheduleState.objects.create(
        queue=queue.name,
        name="noop",
        expression="@daily",
        notify_channel="dpq-tests",
        last_due_at=timezone.now(),
    )
    job = make_job("noop")
    queue.listen()
    queue.wait(0)

    result = controls.run_again(job.pk)

    assert result.notified
    assert queue.wait(5)


@pytest.mark.django_db
def test_edit_job_in_code_refuses_bad_priority_and_missing_job(failed_job):
    job = failed_job()

    with pytest.raises(exceptions.JobNotEditableError, match="out of range"):
        controls.edit_job(job.pk, args={}, priority=PRIORITY_MAX + 1)
    with pytest.raises(exceptions.JobNotFoundError):
        controls.edit_job(999999, args={}, priority=0)
    with pytest.raises(exceptions.JobNotFoundError):
        controls.run_again(999999)
