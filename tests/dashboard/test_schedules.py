"""The Schedules page: what it shows, run now, pause and resume, permissions."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from dpq import schedule_store
from dpq import scheduler as engine
from dpq.models import Job, ScheduleState
from tests.conftest import start_thread, wait_until
from tests.dashboard.conftest import url
from tests.queues import scheduled_queue


def page_url(view: str = "changelist", *args) -> str:
    return reverse(f"admin:dpq_schedulestate_{view}", args=args)


@pytest.fixture
def schedule(db):
    """The schedule suites' queue declared as its scheduling worker would, last run 1 minute ago."""
    now = timezone.now()
    schedule_store.ScheduleTable(scheduled_queue).declare(
        scheduled_queue.schedules, now
    )
    ScheduleState.objects.filter(name="record_due").update(
        next_due_at=now + datetime.timedelta(minutes=3, seconds=30),
        last_enqueued_at=now - datetime.timedelta(minutes=1),
        last_job_id=41,
    )
    return ScheduleState.objects.get(name="record_due")


@pytest.fixture
def schedule_client(client, make_staff):
    user = make_staff(
        "view_job", "view_schedulestate", "run_schedule", "change_schedulestate",
        username="scheduler",
    )  # fmt: skip
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def schedule_viewer(client, make_staff):
    client.force_login(make_staff("view_job", "view_schedulestate", username="looker"))
    return client


def said(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.mark.django_db
def test_page_shows_each_schedule_its_next_run_in_words_and_as_a_time(
    schedule_viewer, schedule, django_assert_max_num_queries
):
    with django_assert_max_num_queries(8):
        response = schedule_viewer.get(page_url())

    html = response.content.decode()
    assert response.status_code == 200
    assert "<code>every 1 second</code>" in html
    assert "in 3\xa0minutes" in html
    assert (
        timezone.localtime(schedule.next_due_at).isoformat(sep=" ", timespec="seconds")
        in html
    )
    assert f'href="{url("job", 41)}"' in html
    assert "no worker schedules it now" in html
    assert 'value="Run now"' not in html  # no run_schedule permission


@pytest.mark.django_db
def test_page_without_schedules_says_how_to_declare_them(schedule_viewer):
    response = schedule_viewer.get(page_url())

    assert 'id="dpq-no-schedules"' in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_page_names_the_worker_that_schedules_the_queue(schedule_viewer, schedule):
    leading = threading.Event()
    release = threading.Event()

    def lead():
        scheduler = engine.Scheduler(
            scheduled_queue,
            scheduled_queue.schedules,
            schedule_store.ScheduleTable(scheduled_queue),
        )
        scheduler.ensure_connection()
        assert scheduler.try_lead()
        leading.set()
        release.wait(30)
        scheduler.close()

    holder = start_thread(lead)
    try:
        wait_until(leading.is_set, 10)
        response = schedule_viewer.get(page_url())
    finally:
        release.set()
        holder.join(10)

    assert ":scheduler</code>" in response.content.decode()
    assert "dpq:scheduled:" in response.content.decode()


@pytest.mark.django_db
def test_run_now_enqueues_the_job_says_so_and_logs_it(schedule_client, schedule):
    response = schedule_client.post(page_url("run", schedule.pk), follow=True)

    job = Job.objects.get()
    assert (job.task, job.queue) == ("record_due", "scheduled")
    assert said(response) == [
        f"Ran 'record_due' of queue 'scheduled' now: enqueued job {job.id}."
    ]
    entry = LogEntry.objects.get()
    assert entry.object_id == str(schedule.pk)
    assert f"enqueued job {job.id}" in entry.get_change_message()
    assert ScheduleState.objects.get().last_job_id == job.id


@pytest.mark.django_db
def test_run_now_needs_post(schedule_client, schedule):
    response = schedule_client.get(page_url("run", schedule.pk))

    assert response.status_code == 405
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_run_now_needs_the_run_permission(schedule_viewer, schedule):
    response = schedule_viewer.post(page_url("run", schedule.pk))

    assert response.status_code == 403
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_run_now_is_refused_without_csrf_token(client, make_staff, schedule):
    from django.test import Client

    checked = Client(enforce_csrf_checks=True)
    checked.force_login(make_staff("view_schedulestate", "run_schedule"))

    response = checked.post(page_url("run", schedule.pk))

    assert response.status_code == 403
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_pause_then_resume_from_the_page(schedule_client, schedule):
    paused = schedule_client.post(page_url("pause", schedule.pk), follow=True)
    assert ScheduleState.objects.get().paused
    assert "paused" in paused.content.decode()
    assert 'value="Resume"' in paused.content.decode()

    schedule_client.post(page_url("resume", schedule.pk))

    assert not ScheduleState.objects.get().paused
    assert [
        entry.get_change_message()[:7] for entry in LogEntry.objects.order_by("id")
    ] == [
        "Paused ",
        "Resumed",
    ]


@pytest.mark.django_db
def test_pause_needs_the_change_permission(schedule_viewer, schedule):
    response = schedule_viewer.post(page_url("pause", schedule.pk))

    assert response.status_code == 403
    assert not ScheduleState.objects.get().paused


@pytest.mark.django_db
def test_page_needs_the_view_permission(client, make_staff, schedule):
    client.force_login(make_staff("view_job"))

    assert client.get(page_url()).status_code == 403


@pytest.mark.django_db
def test_dashboard_links_to_the_schedules_page(schedule_viewer):
    response = schedule_viewer.get(url("changelist"))

    assert f'href="{page_url()}"' in response.content.decode()
