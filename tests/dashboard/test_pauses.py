"""Pause and resume a queue from the dashboard: permission, POST, history, what it says."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from dpq import pauses
from tests.dashboard.conftest import url

pytestmark = pytest.mark.django_db


@pytest.fixture
def pauser_client(client, make_staff):
    user = make_staff("view_job", "change_queuepause", username="pauser")
    client.force_login(user)
    return client


def test_dashboard_offers_pause_for_a_queue_with_jobs(pauser_client, make_job):
    make_job("noop")

    page = pauser_client.get(url("changelist")).content.decode()

    assert 'id="dpq-pauses"' in page and ">Pause</button>" in page


def test_pause_from_dashboard_pauses_logs_and_shows_paused(pauser_client, make_job):
    job = make_job("noop")

    response = pauser_client.post(url("pause_queue"), {"queue": job.queue})

    assert response.status_code == 302
    pause = pauses.queue_pause(job.queue)
    assert pause is not None and pause.paused_by == "pauser"
    assert LogEntry.objects.get().change_message.startswith("Paused queue")
    page = pauser_client.get(url("changelist")).content.decode()
    assert "paused</span> since" in page and ">Resume</button>" in page

    pauser_client.post(url("resume_queue"), {"queue": job.queue})
    assert pauses.queue_pause(job.queue) is None
    assert LogEntry.objects.count() == 2


def test_pause_needs_permission(viewer_client, make_job):
    job = make_job("noop")

    response = viewer_client.post(url("pause_queue"), {"queue": job.queue})

    assert response.status_code == 403
    assert pauses.queue_pause(job.queue) is None


def test_pause_is_post_only(pauser_client, make_job):
    assert pauser_client.get(url("pause_queue")).status_code == 405
    assert pauses.paused_queues() == {}


@pytest.mark.parametrize("name", ["", "x" * 101, "a\x00b"])
def test_pause_refuses_bad_queue_names(pauser_client, name):
    response = pauser_client.post(url("pause_queue"), {"queue": name})

    assert response.status_code == 302
    assert pauses.paused_queues() == {}
