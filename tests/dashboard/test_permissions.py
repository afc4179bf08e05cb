"""Who sees and changes what: login, staff, model permissions, POST-only actions, CSRF."""

from __future__ import annotations

import pytest
from django.contrib import admin, messages
from django.test import Client
from django.utils import timezone

from dpq.models import Job, JobState
from tests.dashboard.conftest import url

PAGES = ["changelist", "queued", "running", "delayed", "failed", "all"]


@pytest.fixture
def failed(make_job):
    return make_job("fail", failed_at=timezone.now())


@pytest.mark.django_db
@pytest.mark.parametrize("page", PAGES)
def test_anonymous_user_is_sent_to_login(client, page):
    response = client.get(url(page))

    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("page", PAGES)
def test_staff_without_view_permission_gets_403(client, make_staff, page):
    client.force_login(make_staff())

    assert client.get(url(page)).status_code == 403


@pytest.mark.django_db
def test_staff_without_view_permission_gets_403_on_job_page(client, make_staff, failed):
    client.force_login(make_staff())

    assert client.get(url("job", failed.id)).status_code == 403


@pytest.mark.django_db
def test_staff_without_view_permission_cannot_run_action(client, make_staff, failed):
    client.force_login(make_staff("requeue_job"))

    response = client.post(
        url("action"), {"action": "requeue_jobs", "ids": [failed.id]}
    )

    assert response.status_code == 403
    assert Job.objects.get(id=failed.id).state == JobState.FAILED


@pytest.mark.django_db
def test_admin_index_hides_jobs_without_view_permission(client, make_staff):
    client.force_login(make_staff())

    assert url("changelist") not in client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_viewer_cannot_requeue(viewer_client, failed):
    response = viewer_client.post(
        url("action"), {"action": "requeue_jobs", "ids": [failed.id]}
    )

    assert response.status_code == 403
    assert Job.objects.get(id=failed.id).state == JobState.FAILED


@pytest.mark.django_db
def test_viewer_cannot_delete(viewer_client, failed):
    response = viewer_client.post(
        url("action"), {"action": "delete_jobs", "ids": [failed.id], "confirm": "yes"}
    )

    assert response.status_code == 403
    assert Job.objects.filter(id=failed.id).exists()


@pytest.mark.django_db
def test_viewer_cannot_requeue_all_failed(viewer_client, failed):
    response = viewer_client.post(url("requeue_failed"), {})

    assert response.status_code == 403
    assert Job.objects.get(id=failed.id).state == JobState.FAILED


@pytest.mark.django_db
def test_requeue_permission_does_not_allow_delete(client, make_staff, failed):
    client.force_login(make_staff("view_job", "requeue_job"))

    response = client.post(
        url("action"), {"action": "delete_jobs", "ids": [failed.id], "confirm": "yes"}
    )

    assert response.status_code == 403
    assert Job.objects.filter(id=failed.id).exists()


@pytest.mark.django_db
def test_viewer_sees_no_action_controls(viewer_client, failed):
    html = viewer_client.get(url("failed")).content.decode()

    assert 'id="dpq-actions"' not in html
    assert 'id="dpq-requeue-failed"' not in html


@pytest.mark.django_db
def test_actions_offered_match_permissions(client, make_staff, failed):
    client.force_login(make_staff("view_job", "requeue_job"))

    actions = dict(client.get(url("failed")).context["actions"])

    assert set(actions) == {"requeue_jobs"}


@pytest.mark.django_db
def test_list_offers_only_dpqs_own_actions(operator_client, failed):
    actions = operator_client.get(url("failed")).context["actions"]

    assert [name for name, _ in actions] == ["requeue_jobs", "delete_jobs"]


def prioritise(modeladmin, request, queryset):
    queryset.update(priority=99)


@pytest.fixture
def site_wide_action():
    admin.site.add_action(prioritise, "prioritise")
    yield "prioritise"
    admin.site.disable_action("prioritise")


@pytest.mark.django_db
def test_site_wide_action_is_not_offered(operator_client, failed, site_wide_action):
    actions = dict(operator_client.get(url("failed")).context["actions"])

    assert site_wide_action not in actions


@pytest.mark.django_db
def test_site_wide_action_is_not_run(operator_client, failed, site_wide_action):
    response = operator_client.post(
        url("action"), {"action": site_wide_action, "ids": [failed.id]}
    )

    assert [m.message for m in messages.get_messages(response.wsgi_request)] == [
        "Choose an action to run on the selected jobs."
    ]
    assert Job.objects.get(id=failed.id).priority == 0


@pytest.mark.django_db
def test_get_on_action_url_changes_nothing(operator_client, failed):
    response = operator_client.get(
        url("action"), {"action": "requeue_jobs", "ids": failed.id, "confirm": "yes"}
    )

    assert response.status_code == 405
    assert Job.objects.get(id=failed.id).state == JobState.FAILED


@pytest.mark.django_db
def test_get_on_delete_changes_nothing(operator_client, failed):
    response = operator_client.get(
        url("action"), {"action": "delete_jobs", "ids": failed.id, "confirm": "yes"}
    )

    assert response.status_code == 405
    assert Job.objects.filter(id=failed.id).exists()


@pytest.mark.django_db
def test_get_on_requeue_all_failed_changes_nothing(operator_client, failed):
    response = operator_client.get(url("requeue_failed"))

    assert response.status_code == 405
    assert Job.objects.get(id=failed.id).state == JobState.FAILED


@pytest.mark.django_db
def test_post_to_dashboard_is_refused(operator_client, failed):
    response = operator_client.post(url("changelist"), {"action": "delete_selected"})

    assert response.status_code == 405
    assert Job.objects.filter(id=failed.id).exists()


@pytest.mark.django_db
def test_action_without_csrf_token_is_refused(make_staff, failed):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_staff("view_job", "requeue_job", "delete_job"))

    response = client.post(
        url("action"), {"action": "requeue_jobs", "ids": [failed.id]}
    )

    assert response.status_code == 403
    assert Job.objects.get(id=failed.id).state == JobState.FAILED


@pytest.mark.django_db
def test_django_delete_selected_is_not_offered(operator_client, failed):
    response = operator_client.post(
        url("action"), {"action": "delete_selected", "ids": [failed.id], "post": "yes"}
    )

    assert Job.objects.filter(id=failed.id).exists()
    assert response.status_code == 302
