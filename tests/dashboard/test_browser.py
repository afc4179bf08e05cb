"""The dashboard in a real browser (Debian's chromium through Playwright) on the live server."""

from __future__ import annotations

import pytest
from django.utils import timezone

from dpq.models import Job, JobState
from tests.dashboard.conftest import WORKER_NAME, url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPT = "<script>alert('args')</script>"


def failed(make_job, task: str = "fail", args=None) -> Job:
    return make_job(task, args or {}, failed_at=timezone.now(), attempts=3)


def run_action(page, job_id: int, action: str) -> None:
    page.check(f'input[name="ids"][value="{job_id}"]')
    page.select_option('select[name="action"]', action)
    page.click('#dpq-actions button[type="submit"]')


def test_requeue_failed_job_from_browser(logged_in, live_server, make_job):
    page = logged_in
    job = failed(make_job)
    failed(make_job)

    page.click(f'a[href="{url("changelist")}"]')
    page.click(f'a[href="{url("failed")}"]')
    run_action(page, job.id, "requeue_jobs")

    assert page.locator(".messagelist").inner_text().strip() == "Requeued 1 job."
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert page.locator(f'tr[data-job-id="{job.id}"]').count() == 0


def test_delete_failed_job_from_browser(logged_in, live_server, make_job):
    page = logged_in
    job = failed(make_job)

    page.goto(live_server.url + url("failed"))
    run_action(page, job.id, "delete_jobs")
    assert "are you sure?" in page.locator("h1").inner_text()
    assert Job.objects.filter(id=job.id).exists()
    page.click('input[value="Yes, delete"]')

    assert page.locator(".messagelist").inner_text().strip() == "Deleted 1 job."
    assert not Job.objects.filter(id=job.id).exists()


def test_requeue_from_job_page(logged_in, live_server, make_job):
    page = logged_in
    job = failed(make_job)

    page.goto(live_server.url + url("job", job.id))
    page.check('input[name="reset_attempts"]')
    page.click("text=Requeue (run now)")

    assert (
        "Requeued 1 job with attempts reset."
        in page.locator(".messagelist").inner_text()
    )
    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)


def test_html_in_job_data_is_shown_as_text(logged_in, live_server, make_job):
    page = logged_in
    job = failed(make_job, args={"comment": SCRIPT, "api_token": "tok-123"})
    Job.objects.filter(id=job.id).update(
        task="<img src=x onerror=alert('task')>",
        last_error=f"Traceback (most recent call last):\nValueError: {SCRIPT}\n",
    )

    page.goto(live_server.url + url("failed"))
    page.goto(live_server.url + url("changelist"))
    page.goto(live_server.url + url("job", job.id))

    assert page.dialogs == []
    assert SCRIPT in page.locator("#dpq-args").inner_text()
    assert SCRIPT in page.locator("#dpq-last-error").inner_text()
    assert "<img src=x onerror=alert('task')>" in page.locator("h1").inner_text()
    assert "tok-123" not in page.content()


def test_dashboard_shows_running_job_and_its_worker(
    logged_in, live_server, make_job, hold_job
):
    page = logged_in
    job = make_job("noop")
    make_job("noop")
    hold_job()

    page.goto(live_server.url + url("changelist"))

    assert page.locator("#dpq-count-running").inner_text() == "1"
    assert page.locator("#dpq-count-queued").inner_text() == "1"
    worker_row = page.locator("tr", has_text=WORKER_NAME).first
    assert str(job.id) in worker_row.inner_text()


def test_health_page_from_the_dashboard(logged_in, live_server, make_job):
    page = logged_in
    make_job("noop")

    page.goto(f"{live_server.url}{url('changelist')}")
    page.click(f'a[href="{url("health")}"]')

    page.wait_for_url(f"{live_server.url}{url('health')}")
    assert page.locator("#dpq-health-connections th").inner_text() == (
        "Connections in use"
    )
    assert (
        "reserved for superusers"
        in page.locator("#dpq-health-connections").inner_text()
    )
    assert page.locator("#dpq-health-size-dpq_job_claim_idx").count() == 1
    assert page.locator(".dpq-nav a.dpq-current").inner_text() == "Health"


def test_why_not_running_on_a_queued_jobs_page(logged_in, live_server, make_job):
    page = logged_in
    make_job("noop", priority=9)
    job = make_job("noop")

    page.goto(f"{live_server.url}{url('queued')}")
    page.click(f'tr[data-job-id="{job.id}"] a[href="{url("job", job.id)}"]')

    assert page.locator("#dpq-why-ahead").inner_text() == (
        "1 job of queue 'default' comes before it (a higher priority, or due earlier)."
    )
    assert (
        page.locator("#dpq-why-workers")
        .inner_text()
        .startswith("No worker serves queue 'default' now")
    )
