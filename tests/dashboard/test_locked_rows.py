"""Every URL of JobAdmin answers at once for a job whose row a worker holds locked.

``no_lock_wait`` sets a lock_timeout on the test's connection: a page that waited on the
row lock fails with "canceling statement due to lock timeout" instead of hanging.
"""

from __future__ import annotations

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.utils import timezone

from dpq.models import Job, JobState
from dpq_admin import links
from tests.dashboard.conftest import url

pytestmark = pytest.mark.django_db(transaction=True)


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def running_message(job_id: int) -> str:
    return (
        f"Job {job_id} is running (a worker holds its row lock); it cannot be "
        "deleted until its run ends."
    )


@pytest.fixture
def running(make_job, hold_job, no_lock_wait) -> Job:
    """A ready job that a worker has claimed and is running."""
    job = make_job("noop")
    assert hold_job().job.id == job.id
    return job


@pytest.fixture
def locked_failed(make_job, lock_job, no_lock_wait) -> Job:
    """A failed job whose row another connection holds with SELECT ... FOR UPDATE."""
    job = make_job("fail", failed_at=timezone.now(), attempts=3)
    lock_job(job)
    return job


def test_dashboard_shows_running_job_without_waiting(operator_client, running):
    response = operator_client.get(url("changelist"))

    assert response.status_code == 200
    assert response.context["running"].ids == {running.id}


@pytest.mark.parametrize("page", links.LIST_STATES)
def test_job_list_shows_running_job_without_waiting(operator_client, running, page):
    response = operator_client.get(url(page), {"q": str(running.id)})

    assert response.status_code == 200


def test_job_page_shows_running_job_without_waiting(operator_client, running):
    response = operator_client.get(url("job", running.id))

    assert response.status_code == 200
    assert response.context["state"] == JobState.RUNNING


def test_add_page_is_refused_while_a_job_runs(operator_client, running):
    assert operator_client.get(url("add")).status_code == 403
    assert operator_client.post(url("add"), {"task": "noop"}).status_code == 403
    assert list(Job.objects.values_list("id", flat=True)) == [running.id]


def test_change_page_of_running_job_redirects_to_job_page(operator_client, running):
    response = operator_client.get(url("change", running.id))

    assert response.status_code == 302
    assert response["Location"] == url("job", running.id)


def test_change_post_of_running_job_changes_nothing(operator_client, running):
    response = operator_client.post(url("change", running.id), {"priority": "9"})

    assert response.status_code == 302
    assert Job.objects.get(id=running.id).priority == 0


def test_history_of_running_job_answers_without_waiting(operator_client, running):
    response = operator_client.get(url("history", running.id))

    assert response.status_code == 200


def test_delete_page_of_running_job_refuses_without_waiting(operator_client, running):
    response = operator_client.get(url("delete", running.id))

    assert response.status_code == 302
    assert response["Location"] == url("job", running.id)
    assert said(response) == [running_message(running.id)]
    assert Job.objects.filter(id=running.id).exists()


def test_delete_post_of_running_job_refuses_without_waiting(operator_client, running):
    response = operator_client.post(url("delete", running.id), {"post": "yes"})

    assert response.status_code == 302
    assert response["Location"] == url("job", running.id)
    assert said(response) == [running_message(running.id)]
    assert Job.objects.filter(id=running.id).exists()
    assert not LogEntry.objects.exists()


def test_delete_post_of_locked_failed_job_refuses_without_waiting(
    operator_client, locked_failed
):
    response = operator_client.post(url("delete", locked_failed.id), {"post": "yes"})

    assert said(response) == [running_message(locked_failed.id)]
    assert Job.objects.filter(id=locked_failed.id).exists()


def test_requeue_action_skips_locked_failed_job_without_waiting(
    operator_client, locked_failed
):
    response = operator_client.post(
        url("action"), {"action": "requeue_jobs", "ids": [locked_failed.id]}
    )

    assert said(response) == [
        "Requeued 0 jobs; skipped 1 running job (a worker holds its row lock until the run ends)."
    ]
    assert Job.objects.get(id=locked_failed.id).state == JobState.FAILED


def test_delete_action_skips_locked_failed_job_without_waiting(
    operator_client, locked_failed
):
    response = operator_client.post(
        url("action"),
        {"action": "delete_jobs", "ids": [locked_failed.id], "confirm": "yes"},
    )

    assert said(response) == [
        "Deleted 0 jobs; skipped 1 running job (a worker holds its row lock until the run ends)."
    ]
    assert Job.objects.filter(id=locked_failed.id).exists()


def test_delete_confirmation_of_action_answers_without_waiting(
    operator_client, locked_failed
):
    response = operator_client.post(
        url("action"), {"action": "delete_jobs", "ids": [locked_failed.id]}
    )

    assert response.status_code == 200
    assert "running: it will be skipped" in response.content.decode()


def test_djangos_delete_selected_action_is_refused(operator_client, running):
    response = operator_client.post(
        url("action"), {"action": "delete_selected", "ids": [running.id]}
    )

    assert said(response) == ["Choose an action to run on the selected jobs."]
    assert Job.objects.filter(id=running.id).exists()


def test_changelist_post_of_djangos_action_form_is_refused(operator_client, running):
    response = operator_client.post(
        url("changelist"),
        {"action": "delete_selected", "_selected_action": [running.id], "post": "yes"},
    )

    assert response.status_code == 405
    assert Job.objects.filter(id=running.id).exists()


def test_requeue_all_failed_skips_locked_failed_job_without_waiting(
    operator_client, locked_failed
):
    response = operator_client.post(url("requeue_failed"), {"queue": "default"})

    assert said(response) == [
        "Failed jobs of queue 'default': Requeued 0 jobs; skipped 1 running job "
        "(a worker holds its row lock until the run ends)."
    ]
    assert Job.objects.get(id=locked_failed.id).state == JobState.FAILED


def test_autocomplete_for_jobs_answers_without_waiting(operator_client, running):
    response = operator_client.get(
        "/admin/autocomplete/",
        {"app_label": "dpq", "model_name": "job", "field_name": "id", "term": "1"},
    )

    assert response.status_code == 403


def test_view_on_site_shortcut_of_running_job_answers_without_waiting(
    operator_client, running
):
    content_type = ContentType.objects.get_for_model(Job)

    response = operator_client.get(f"/admin/r/{content_type.id}/{running.id}/")

    assert response.status_code == 404


# --- The delete page of a job that is not running -------------------------------------------


def test_delete_page_asks_for_confirmation_through_dpqs_page(operator_client, make_job):
    job = make_job("noop")

    response = operator_client.get(url("delete", job.id))

    assert response.status_code == 200
    assert "Yes, delete" in response.content.decode()
    assert response.context["ids"] == [job.id]
    assert Job.objects.filter(id=job.id).exists()


def test_delete_post_deletes_job_says_so_and_logs_it(operator_client, make_job):
    job = make_job("noop")

    response = operator_client.post(url("delete", job.id), {"post": "yes"})

    assert response.status_code == 302
    assert said(response) == [f"Deleted job {job.id}."]
    assert not Job.objects.filter(id=job.id).exists()
    entry = LogEntry.objects.get()
    assert (entry.object_id, entry.action_flag) == (str(job.id), DELETION)


def test_delete_post_of_missing_job_says_it_no_longer_exists(operator_client):
    response = operator_client.post(url("delete", 999999), {"post": "yes"})

    assert response.status_code == 302
    assert said(response) == [
        "Job 999999 does not exist: it ran and succeeded, or it was deleted."
    ]


@pytest.mark.parametrize("object_id", ["abc", "%C2%B2", "99999999999999999999"])
def test_delete_page_with_bad_id_says_so(operator_client, make_job, object_id):
    job = make_job("noop")

    response = operator_client.post(
        f"/admin/dpq/job/{object_id}/delete/", {"post": "yes"}
    )

    assert response.status_code == 302
    assert said(response)[0].endswith("nothing was deleted.")
    assert Job.objects.filter(id=job.id).exists()


def test_delete_page_needs_delete_permission(viewer_client, make_job):
    job = make_job("noop")

    assert viewer_client.post(url("delete", job.id), {"post": "yes"}).status_code == 403
    assert Job.objects.filter(id=job.id).exists()


@pytest.mark.parametrize("object_id", ["%C2%B2", "99999999999999999999"])
def test_change_page_with_bad_id_goes_to_dashboard(viewer_client, object_id):
    response = viewer_client.get(f"/admin/dpq/job/{object_id}/change/")

    assert response.status_code == 302
    assert response["Location"] == url("changelist")


def test_action_with_id_past_bigint_changes_nothing(operator_client, make_job):
    job = make_job("fail", failed_at=timezone.now())

    response = operator_client.post(
        url("action"), {"action": "requeue_jobs", "ids": [job.id, 2**63]}
    )

    assert response.status_code == 302
    assert "must be numbers" in said(response)[0]
    assert Job.objects.get(id=job.id).state == JobState.FAILED
