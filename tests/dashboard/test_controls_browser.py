"""Edit-and-requeue and run-again in a real browser (Debian's chromium through Playwright)."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from dpq.models import Job, JobState
from dpq_admin.redact import MASK
from tests.dashboard.conftest import url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_edit_and_requeue_from_browser_keeps_masked_secret(
    logged_in, live_server, make_job
):
    page = logged_in
    job = make_job(
        "fail",
        {"to": "a@example.com", "token": "s3cr3t-value"},
        failed_at=timezone.now(),
    )

    page.goto(live_server.url + url("job", job.id))
    page.click("#dpq-edit-link")
    shown = json.loads(page.input_value("#id_args"))
    assert shown == {"to": "a@example.com", "token": MASK}
    shown["to"] = "b@example.com"
    page.fill("#id_args", json.dumps(shown))
    page.fill("#id_priority", "3")
    page.click('input[value="Save and requeue"]')

    assert (
        "edited and requeued (was failed)" in page.locator(".messagelist").inner_text()
    )
    job.refresh_from_db()
    assert job.args == {"to": "b@example.com", "token": "s3cr3t-value"}
    assert (job.priority, job.state) == (3, JobState.QUEUED)
    assert LogEntry.objects.filter(object_id=str(job.id)).count() == 1


def test_edit_with_bad_json_in_browser_shows_the_error(
    logged_in, live_server, make_job
):
    page = logged_in
    job = make_job("fail", {"n": 1}, failed_at=timezone.now())

    page.goto(live_server.url + url("edit", job.id))
    page.fill("#id_args", "{not json")
    page.click('input[value="Save and requeue"]')

    assert "This is not valid JSON" in page.locator(".errorlist").first.inner_text()
    job.refresh_from_db()
    assert job.args == {"n": 1} and job.failed_at is not None


def test_run_again_from_browser_opens_the_copy(logged_in, live_server, make_job):
    page = logged_in
    job = make_job("fail", {"n": 1}, failed_at=timezone.now())

    page.goto(live_server.url + url("job", job.id))
    page.click("#dpq-run-again button")

    copy = Job.objects.exclude(pk=job.id).get()
    page.wait_for_url(f"{live_server.url}{url('job', copy.id)}")
    assert f"a copy of job {job.id}" in page.locator(".messagelist").inner_text()
    assert page.locator("#dpq-job-state").inner_text() == "queued"


def test_pause_and_resume_from_browser(logged_in, live_server, make_job):
    from django.contrib.auth.models import Permission, User

    from dpq import pauses

    page = logged_in
    User.objects.get(username="operator").user_permissions.add(
        Permission.objects.get(codename="change_queuepause")
    )
    job = make_job("noop")

    page.goto(live_server.url + url("changelist"))
    page.click(f'#dpq-pauses tr[data-queue="{job.queue}"] button')
    assert "Paused queue" in page.locator(".messagelist").inner_text()
    assert (
        "paused"
        in page.locator(f'#dpq-pauses tr[data-queue="{job.queue}"]').inner_text()
    )
    assert pauses.queue_pause(job.queue) is not None

    page.click(f'#dpq-pauses tr[data-queue="{job.queue}"] button:has-text("Resume")')
    assert "Resumed queue" in page.locator(".messagelist").inner_text()
    assert pauses.queue_pause(job.queue) is None
