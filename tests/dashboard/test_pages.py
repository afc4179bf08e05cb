"""The dashboard, the job page and the pgrowlocks fallback, as a person with view rights sees them."""

from __future__ import annotations

import datetime
import logging

import pytest
from django.core import checks
from django.db import connection
from django.utils import timezone

from dpq.models import Job
from dpq_admin import checks as admin_checks
from tests.dashboard.conftest import WORKER_NAME, url


def number(response, state: str) -> str:
    html = response.content.decode()
    marker = f'id="dpq-count-{state}">'
    start = html.index(marker) + len(marker)
    return html[start : html.index("<", start)]


@pytest.mark.django_db
def test_admin_index_lists_jobs_linking_to_dashboard(viewer_client):
    response = viewer_client.get("/admin/")

    assert response.status_code == 200
    assert f'href="{url("changelist")}"' in response.content.decode()
    assert ">Jobs<" in response.content.decode()


@pytest.mark.django_db
def test_dashboard_counts_jobs_per_state(viewer_client, make_job):
    later = timezone.now() + datetime.timedelta(hours=1)
    make_job("noop")
    make_job("noop")
    make_job("noop", execute_at=later)
    make_job("fail", failed_at=timezone.now())

    response = viewer_client.get(url("changelist"))

    assert response.status_code == 200
    assert number(response, "queued") == "2"
    assert number(response, "running") == "0"
    assert number(response, "delayed") == "1"
    assert number(response, "failed") == "1"


@pytest.mark.django_db
def test_dashboard_counts_per_queue_and_per_task(viewer_client, make_job):
    make_job("noop")
    make_job("record", failed_at=timezone.now())
    make_job("noop")
    Job.objects.filter(task="noop").update(queue="mail")

    counts = viewer_client.get(url("changelist")).context["counts"]

    assert (counts.by_queue["mail"].queued, counts.by_queue["mail"].failed) == (2, 0)
    assert (counts.by_queue["default"].queued, counts.by_queue["default"].failed) == (
        0,
        1,
    )
    assert counts.by_task["noop"].queued == 2
    assert counts.by_task["record"].failed == 1


@pytest.mark.django_db
def test_dashboard_shows_age_of_oldest_queued_job(viewer_client, make_job):
    make_job(
        "noop", execute_at=timezone.now() - datetime.timedelta(minutes=42, seconds=3)
    )
    make_job("noop")

    response = viewer_client.get(url("changelist"))

    assert "42m" in response.content.decode()
    assert response.context["oldest_queued_age_text"].startswith("42m")


@pytest.mark.django_db(transaction=True)
def test_dashboard_counts_job_held_by_worker_as_running_with_its_worker(
    viewer_client, make_job, hold_job
):
    held = make_job("noop")
    make_job("noop", execute_at=timezone.now() + datetime.timedelta(hours=1))
    holder = hold_job()
    make_job("noop")

    response = viewer_client.get(url("changelist"))

    assert holder.job.id == held.id
    assert number(response, "running") == "1"
    assert number(response, "queued") == "1"
    assert number(response, "delayed") == "1"
    workers = response.context["worker_table"].data.data
    mine = [w for w in workers if w.application_name == WORKER_NAME]
    assert len(mine) == 1
    assert (mine[0].queue, mine[0].host, mine[0].process, mine[0].thread) == (
        "default",
        "testhost",
        "4242",
        "t1",
    )
    assert [job.id for job in mine[0].running] == [held.id]
    html = response.content.decode()
    assert WORKER_NAME in html
    assert f'href="{url("job", held.id)}"' in html


@pytest.mark.django_db(transaction=True)
def test_dashboard_flags_long_running_claim(
    viewer_client, make_job, hold_job, settings
):
    settings.DPQ_ADMIN_LONG_RUNNING = 0
    make_job("noop")
    hold_job()

    response = viewer_client.get(url("changelist"))

    assert len(response.context["long_running"]) == 1
    assert "holds back" in response.content.decode()


@pytest.mark.django_db
def test_dashboard_renders_without_pgrowlocks_and_says_how_to_enable(
    viewer_client, make_job, without_pgrowlocks
):
    make_job("noop")

    response = viewer_client.get(url("changelist"))

    assert response.status_code == 200
    assert number(response, "running") == "unknown"
    assert number(response, "queued") == "1"
    assert "CREATE EXTENSION pgrowlocks;" in response.content.decode()


@pytest.mark.django_db
def test_running_list_without_pgrowlocks_says_how_to_enable(
    viewer_client, without_pgrowlocks
):
    response = viewer_client.get(url("running"))

    assert response.status_code == 200
    assert "CREATE EXTENSION pgrowlocks;" in response.content.decode()


@pytest.mark.django_db
def test_check_warns_when_pgrowlocks_is_missing(without_pgrowlocks):
    found = admin_checks.check_pgrowlocks(databases=["default"])

    assert [message.id for message in found] == ["dpq_admin.W001"]
    assert found[0].level == checks.WARNING
    assert "CREATE EXTENSION pgrowlocks;" in found[0].hint


@pytest.mark.django_db
def test_check_is_silent_when_pgrowlocks_is_installed():
    assert admin_checks.check_pgrowlocks(databases=["default"]) == []


@pytest.mark.django_db
def test_migration_creates_pgrowlocks_when_superuser(without_pgrowlocks):
    from django.apps import apps as global_apps

    from dpq_admin.migrations import __name__ as package  # noqa: F401

    migration = __import__("dpq_admin.migrations.0001_pgrowlocks", fromlist=["x"])
    migration.create_pgrowlocks(global_apps, connection.schema_editor())

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pgrowlocks'")
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db
def test_migration_warns_and_changes_nothing_without_superuser(
    without_pgrowlocks, caplog
):
    from django.apps import apps as global_apps

    migration = __import__("dpq_admin.migrations.0001_pgrowlocks", fromlist=["x"])
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE dpq_admin_plain NOSUPERUSER")
        cursor.execute("GRANT ALL ON SCHEMA public TO dpq_admin_plain")
        cursor.execute("SET ROLE dpq_admin_plain")
    try:
        with caplog.at_level(logging.WARNING, logger="dpq.admin"):
            migration.create_pgrowlocks(global_apps, connection.schema_editor())
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")

    assert "CREATE EXTENSION pgrowlocks;" in caplog.text
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pgrowlocks'")
        assert cursor.fetchone() is None


@pytest.mark.django_db
def test_job_page_shows_every_field_args_and_traceback(viewer_client, make_job):
    job = make_job(
        "fail",
        {"to": "ann@example.com", "nested": {"n": 1}},
        attempts=3,
        failed_at=timezone.now(),
        last_error='Traceback (most recent call last):\n  File "x.py"\nValueError: always fails\n',
        priority=7,
    )

    response = viewer_client.get(url("job", job.id))

    html = response.content.decode()
    assert response.status_code == 200
    assert response.context["state"] == "failed"
    assert "ValueError: always fails" in html
    assert "&quot;nested&quot;: {\n    &quot;n&quot;: 1\n  }" in html
    for text in ("ann@example.com", ">7<", ">3<", "default", "<code>fail</code>"):
        assert text in html
    assert "Requeue (run now)" not in html  # a viewer may look, not requeue


@pytest.mark.django_db
def test_job_page_shows_starts_of_crashed_runs(viewer_client, make_job):
    from dpq.models import JobStart

    job = make_job("noop")
    JobStart.objects.create(job_id=job.id, starts=2, solo_starts=1, worker="host:9")

    html = viewer_client.get(url("job", job.id)).content.decode()

    assert "2 (1 alone)" in html
    assert "the worker died while running this job" in html


@pytest.mark.django_db
def test_job_page_of_missing_job_is_404(viewer_client):
    assert viewer_client.get(url("job", 999999)).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_job_page_of_running_job_offers_no_action(operator_client, make_job, hold_job):
    job = make_job("noop")
    hold_job()

    response = operator_client.get(url("job", job.id))

    html = response.content.decode()
    assert response.context["state"] == "running"
    assert WORKER_NAME in html
    assert 'value="requeue_jobs"' not in html
    assert 'value="delete_jobs"' not in html
    assert "cannot be requeued or deleted" in html


@pytest.mark.django_db
def test_change_url_redirects_to_job_page(viewer_client, make_job):
    job = make_job("noop")

    response = viewer_client.get(f"/admin/dpq/job/{job.id}/change/")

    assert response.status_code == 302
    assert response["Location"] == url("job", job.id)


def why(response, key: str) -> str:
    html = response.content.decode()
    marker = f'id="dpq-why-{key}"'
    start = html.index(">", html.index(marker)) + 1
    return html[start : html.index("</li>", start)]


@pytest.mark.django_db
def test_job_page_says_why_a_queued_job_waits(viewer_client, make_job):
    first = make_job("noop", priority=5)
    make_job("noop", priority=5)
    waiting = make_job("noop", priority=0)
    make_job("noop", priority=0, failed_at=timezone.now())  # never ahead
    Job.objects.filter(id__in=[first.id, waiting.id]).update(
        execute_at=timezone.now() - datetime.timedelta(minutes=5)
    )

    response = viewer_client.get(url("job", waiting.id))

    assert "It is due: it has been ready for" in why(response, "due")
    assert why(response, "ahead") == (
        "2 jobs of queue &#x27;default&#x27; come before it (a higher priority, or due "
        "earlier)."
    )
    assert why(response, "workers").startswith(
        "No worker serves queue &#x27;default&#x27; now"
    )
    assert why(response, "held") == "No connection holds its row."
    first_page = viewer_client.get(url("job", first.id))
    assert "it is the next one claimed" in why(first_page, "ahead")


@pytest.mark.django_db(transaction=True)
def test_job_page_says_a_worker_serves_its_queue_and_when_a_delayed_job_is_due(
    viewer_client, make_job, hold_job
):
    make_job("noop")
    hold_job()  # a connection named dpq:default:testhost:4242:t1 holds it
    later = make_job("noop", execute_at=timezone.now() + datetime.timedelta(hours=2))

    response = viewer_client.get(url("job", later.id))

    assert why(response, "due").startswith("It is not due yet: it runs in 1h 59m")
    assert why(response, "workers") == (
        f"1 worker connection serves queue &#x27;default&#x27; now: {WORKER_NAME}."
    )


@pytest.mark.django_db(transaction=True)
def test_job_page_of_running_job_says_nothing_about_waiting(
    viewer_client, make_job, hold_job
):
    job = make_job("noop")
    hold_job()

    response = viewer_client.get(url("job", job.id))

    assert 'id="dpq-why-not-running"' not in response.content.decode()
