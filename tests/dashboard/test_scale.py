"""The dashboard on a big table: counts that stop and say so, grouped digits, lists read one
queue at a time in the same order, pgrowlocks only when a row can be locked."""

from __future__ import annotations

import datetime
import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dpq.models import Job
from dpq_admin import state
from tests.dashboard.conftest import url
from tests.dashboard.test_pages import number


def insert_jobs(count: int, *, queue: str = "default", **fields) -> None:
    fields.setdefault("execute_at", timezone.now() - datetime.timedelta(hours=1))
    Job.objects.bulk_create(
        (Job(task="noop", queue=queue, args={}, **fields) for _ in range(count)),
        batch_size=5000,
    )


def shown(response) -> list[int]:
    return [row.record.pk for row in response.context["table"].paginated_rows]


@pytest.mark.django_db
def test_counts_stop_at_the_limit_and_say_so(viewer_client, settings):
    settings.DPQ_ADMIN_COUNT_LIMIT = 5
    insert_jobs(7)
    insert_jobs(2, queue="mail")
    insert_jobs(1, queue="mail", failed_at=timezone.now())

    response = viewer_client.get(url("changelist"))

    assert number(response, "queued") == "more than 7"
    assert number(response, "failed") == "1"
    counts = response.context["counts"]
    assert counts.by_queue["default"].queued_text == "more than 5"
    assert counts.by_queue["mail"].queued_text == "2"
    html = response.content.decode()
    assert 'id="dpq-tasks-not-counted"' in html
    assert "more than 5 jobs" in html


@pytest.mark.django_db
def test_counts_per_task_while_the_table_is_small(viewer_client, settings):
    settings.DPQ_ADMIN_COUNT_LIMIT = 10
    insert_jobs(4)

    response = viewer_client.get(url("changelist"))

    assert number(response, "queued") == "4"
    assert response.context["counts"].by_task["noop"].queued == 4
    assert 'id="dpq-tasks-not-counted"' not in response.content.decode()


@pytest.mark.django_db
def test_big_numbers_are_grouped_as_the_locale_groups_them(viewer_client, settings):
    settings.DPQ_ADMIN_COUNT_LIMIT = 20_000
    insert_jobs(12_345)

    response = viewer_client.get(url("changelist"))

    assert number(response, "queued") == "12,345"
    assert ">12,345<" in response.content.decode()  # the per-queue table


@pytest.mark.django_db
def test_list_with_bad_task_filter_in_a_big_table_finds_nothing(
    viewer_client, settings
):
    settings.DPQ_ADMIN_COUNT_LIMIT = 2
    insert_jobs(3)

    response = viewer_client.get(url("queued"), {"task": "no-such-task"})

    assert response.status_code == 200
    assert shown(response) == []


@pytest.mark.django_db
def test_no_pgrowlocks_call_while_no_row_can_be_locked(viewer_client):
    insert_jobs(2)

    with CaptureQueriesContext(connection) as queries:
        response = viewer_client.get(url("changelist"))

    assert number(response, "running") == "0"
    assert not any("pgrowlocks(" in query["sql"] for query in queries)


@pytest.mark.django_db(transaction=True)
def test_pgrowlocks_called_once_while_a_worker_holds_a_job(
    viewer_client, make_job, hold_job
):
    make_job("noop")
    hold_job()

    with CaptureQueriesContext(connection) as queries:
        response = viewer_client.get(url("changelist"))

    assert number(response, "running") == "1"
    assert sum("pgrowlocks(" in query["sql"] for query in queries) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("list_state", ["queued", "delayed", "failed"])
def test_lists_across_queues_show_the_order_of_one_sort(viewer_client, list_state):
    now = timezone.now()
    pick = random.Random(7)
    for _ in range(160):
        queue = pick.choice(["a", "a", "a", "b", "c"])
        fields = {"priority": pick.randint(0, 3)}
        # Many jobs share a time: the id must order them.
        moment = now + datetime.timedelta(minutes=pick.randint(1, 4))
        if list_state == "queued":
            fields["execute_at"] = now - datetime.timedelta(minutes=pick.randint(1, 4))
        elif list_state == "delayed":
            fields["execute_at"] = moment
        else:
            fields["failed_at"] = moment
        insert_jobs(1, queue=queue, **fields)
    order = {
        "queued": ("-priority", "execute_at", "id"),
        "delayed": ("execute_at", "id"),
        "failed": ("-failed_at", "-id"),
    }[list_state]
    expected = list(
        state.jobs_in_state(list_state).order_by(*order).values_list("id", flat=True)
    )

    pages = [
        shown(viewer_client.get(url(list_state), {"page": page}))
        for page in (1, 2, 3, 4)
    ]

    assert pages[0] + pages[1] + pages[2] + pages[3] == expected
