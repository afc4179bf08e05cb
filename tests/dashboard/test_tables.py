"""Job lists: filters, search, sorting, pagination without COUNT(*), running rows, query counts."""

from __future__ import annotations

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dpq.models import Job
from dpq_admin import state
from tests.dashboard.conftest import WORKER_NAME, url

# Session and user, messages, pgrowlocks status and call (savepoint included), counts, the
# page itself; the dashboard adds pg_stat_activity and the throughput history, a text search
# its candidates. Whatever the number of jobs shown.
MAX_QUERIES = 13


def ids_shown(response) -> list[int]:
    return [row.record.pk for row in response.context["table"].paginated_rows]


def add_jobs(
    count: int, *, task: str = "noop", queue: str = "default", **fields
) -> list[int]:
    fields.setdefault("execute_at", timezone.now())
    jobs = Job.objects.bulk_create(
        Job(task=task, queue=queue, args={"n": n}, **fields) for n in range(count)
    )
    return [job.pk for job in jobs]


@pytest.mark.django_db
def test_list_filters_by_queue(viewer_client):
    add_jobs(2, queue="default")
    mail = add_jobs(1, queue="mail")

    response = viewer_client.get(url("queued"), {"queue": "mail"})

    assert ids_shown(response) == mail


@pytest.mark.django_db
def test_list_filters_by_task(viewer_client):
    add_jobs(2, task="noop")
    records = add_jobs(2, task="record")

    response = viewer_client.get(url("all"), {"task": "record"})

    assert sorted(ids_shown(response)) == records


@pytest.mark.django_db
def test_list_refuses_unknown_queue_instead_of_querying_it(viewer_client):
    jobs = add_jobs(2)

    response = viewer_client.get(url("all"), {"queue": "x' OR '1'='1"})

    assert response.status_code == 200
    assert "This filter was not applied" in response.content.decode()
    assert sorted(ids_shown(response)) == jobs


@pytest.mark.django_db
def test_list_searches_by_id(viewer_client):
    jobs = add_jobs(3)

    response = viewer_client.get(url("all"), {"q": str(jobs[1])})

    assert ids_shown(response) == [jobs[1]]


@pytest.mark.django_db
def test_list_searches_text_in_args(viewer_client):
    add_jobs(2)
    wanted = Job.objects.create(task="noop", args={"email": "Ann@Example.com"})

    response = viewer_client.get(url("all"), {"q": "ann@example"})

    assert ids_shown(response) == [wanted.pk]


@pytest.mark.django_db
def test_list_search_says_when_candidates_exceed_limit(viewer_client, monkeypatch):
    monkeypatch.setattr(state, "SEARCH_CANDIDATE_LIMIT", 3)
    jobs = add_jobs(5)

    response = viewer_client.get(url("all"), {"q": '"n"'})

    assert ids_shown(response) == sorted(jobs, reverse=True)[:3]
    assert "Showing matches among the newest 3 jobs" in response.content.decode()


@pytest.mark.django_db
def test_list_search_within_limit_says_nothing_of_it(viewer_client, monkeypatch):
    monkeypatch.setattr(state, "SEARCH_CANDIDATE_LIMIT", 5)
    jobs = add_jobs(5)

    response = viewer_client.get(url("all"), {"q": '"n"'})

    assert sorted(ids_shown(response)) == jobs
    assert "dpq-search-truncated" not in response.content.decode()


@pytest.mark.django_db
def test_list_search_sorts_and_paginates_matches(viewer_client):
    jobs = add_jobs(60)

    response = viewer_client.get(url("all"), {"q": '"n"', "sort": "id", "page": 2})

    assert ids_shown(response) == jobs[50:]


@pytest.mark.django_db
def test_list_search_queries_do_not_grow_with_candidates(
    viewer_client, django_assert_max_num_queries
):
    add_jobs(300, failed_at=timezone.now())

    with django_assert_max_num_queries(MAX_QUERIES):
        response = viewer_client.get(url("failed"), {"q": '"n"'})

    assert len(ids_shown(response)) == 50


@pytest.mark.django_db
def test_list_sorts_by_orderable_column(viewer_client):
    low, high = add_jobs(1, priority=1) + add_jobs(1, priority=9)

    ascending = viewer_client.get(url("all"), {"sort": "priority"})
    descending = viewer_client.get(url("all"), {"sort": "-priority"})

    assert ids_shown(ascending) == [low, high]
    assert ids_shown(descending) == [high, low]


@pytest.mark.django_db
def test_list_ignores_sort_by_unknown_name(viewer_client):
    jobs = add_jobs(3)

    response = viewer_client.get(url("all"), {"sort": "id; DROP TABLE dpq_job"})

    assert response.status_code == 200
    assert ids_shown(response) == sorted(jobs, reverse=True)


@pytest.mark.django_db
def test_queued_list_runs_next_job_first(viewer_client):
    now = timezone.now()
    later = add_jobs(1, priority=0)
    first = add_jobs(1, priority=5)
    Job.objects.filter(pk__in=later).update(
        execute_at=now - datetime.timedelta(hours=1)
    )

    assert ids_shown(viewer_client.get(url("queued"))) == first + later


@pytest.mark.django_db
def test_list_paginates_without_counting(viewer_client):
    jobs = add_jobs(60)

    with CaptureQueriesContext(connection) as queries:
        first = viewer_client.get(url("all"))
    second = viewer_client.get(url("all"), {"page": 2})

    assert ids_shown(first) == sorted(jobs, reverse=True)[:50]
    assert ids_shown(second) == sorted(jobs, reverse=True)[50:]
    assert 'rel="next"' in first.content.decode()
    assert not [q for q in queries if "COUNT(*) AS" in q["sql"].upper()]


@pytest.mark.django_db(transaction=True)
def test_queued_list_marks_job_held_by_worker_as_running(
    viewer_client, make_job, hold_job
):
    held = make_job("noop")
    waiting = make_job("noop")
    hold_job()

    response = viewer_client.get(url("queued"))

    table = response.context["table"]
    rows = {row.record.pk: row.record for row in table.paginated_rows}
    assert table.cell(rows[held.id], "state") == "running"
    assert table.cell(rows[waiting.id], "state") == "queued"
    assert re.search(
        rf'class="[^"]*\bdpq-running\b[^"]*" data-job-id="{held.id}"',
        response.content.decode(),
    )


@pytest.mark.django_db(transaction=True)
def test_running_list_shows_worker_and_duration(viewer_client, make_job, hold_job):
    held = make_job("noop")
    hold_job()

    response = viewer_client.get(url("running"))

    jobs = list(response.context["table"].data.data)
    assert [(job.id, job.application_name) for job in jobs] == [(held.id, WORKER_NAME)]
    assert "Update" in " ".join(jobs[0].modes)
    assert jobs[0].seconds is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "page", ["changelist", "queued", "running", "delayed", "failed", "all"]
)
def test_page_queries_do_not_grow_with_jobs(
    viewer_client, page, django_assert_max_num_queries
):
    add_jobs(3, failed_at=timezone.now())
    add_jobs(3)
    with django_assert_max_num_queries(MAX_QUERIES):
        assert viewer_client.get(url(page)).status_code == 200

    add_jobs(120, failed_at=timezone.now())
    add_jobs(120, execute_at=timezone.now() + datetime.timedelta(hours=1))
    add_jobs(120, task="record", queue="mail")
    with django_assert_max_num_queries(MAX_QUERIES):
        assert viewer_client.get(url(page)).status_code == 200


@pytest.mark.django_db
def test_job_page_queries_are_bounded(viewer_client, django_assert_max_num_queries):
    job = Job.objects.create(task="noop", args={"n": list(range(500))})

    with django_assert_max_num_queries(MAX_QUERIES):
        assert viewer_client.get(url("job", job.pk)).status_code == 200


@pytest.mark.django_db
def test_delete_confirmation_queries_do_not_grow_with_selection(
    operator_client, django_assert_max_num_queries
):
    ids = add_jobs(200, failed_at=timezone.now())

    with django_assert_max_num_queries(MAX_QUERIES):
        response = operator_client.post(
            url("action"), {"action": "delete_jobs", "ids": ids}
        )

    assert response.status_code == 200
    assert len(response.context["jobs"]) == 200


@pytest.mark.django_db
def test_delete_page_queries_are_bounded(
    operator_client, django_assert_max_num_queries
):
    job = Job.objects.create(task="noop")

    with django_assert_max_num_queries(MAX_QUERIES):
        assert operator_client.get(url("delete", job.pk)).status_code == 200
