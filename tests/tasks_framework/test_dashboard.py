"""The dashboard with DpqBackend's jobs and results."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.tasks_framework import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = User.objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(user)
    return client


def test_task_jobs_show_their_path_and_arguments(staff_client):
    result = tasks.add.enqueue(40, b=2)
    page = staff_client.get(f"/admin/dpq/job/{result.id}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "tests.tasks_framework.tasks.add" in text
    assert "&quot;kwargs&quot;" in text or '"kwargs"' in text


def test_recent_results_are_listed(staff_client, run):
    result = tasks.add.enqueue(1, 2)
    run()
    page = staff_client.get("/admin/dpq/taskresult/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "tests.tasks_framework.tasks.add" in text and "SUCCESSFUL" in text
    detail = staff_client.get(f"/admin/dpq/taskresult/{result.id}/change/")
    assert detail.status_code == 200
