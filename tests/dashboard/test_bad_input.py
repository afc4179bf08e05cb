"""Bad input on every dashboard page: every query parameter and path argument, fuzzed.

Each page answers a 4xx, or a page that says what was wrong; never a 500, and never a
change to a job.
"""

from __future__ import annotations

import datetime
from urllib.parse import quote

import pytest
from django.urls import reverse
from django.utils import timezone

from dpq.models import Job, ScheduleState
from tests.dashboard.conftest import url

# Huge, negative, non-numeric, NUL, quotes, very long.
VALUES = [
    "99999999999999999999",
    "9223372036854775808",
    "-1",
    "-99999999999999999999",
    "0",
    "1e9",
    "1.5",
    "abc",
    "\x00",
    "1\x00",
    "'",
    '"',
    "' OR 1=1 --",
    "%",
    "²",
    "\uff11",  # a fullwidth digit one
    " ",
    "x" * 5000,
    "9" * 5000,
]
# Path arguments: the same, as they can appear in a URL.
PATH_VALUES = [quote(value, safe="") for value in VALUES if value.strip()]

LIST_VIEWS = ["queued", "running", "delayed", "failed", "all"]
LIST_PARAMS = ["page", "per_page", "sort", "queue", "task", "q"]
DASHBOARD_PARAMS = [
    f"{prefix}-{name}"
    for prefix in ("queues", "tasks", "workers", "running")
    for name in ("page", "per_page", "sort")
]
SCHEDULE_PARAMS = ["page", "per_page", "sort"]
# Messages a page shows for a parameter it could not use.
BAD_PAGE_MESSAGE = 'id="dpq-bad-param"'


@pytest.fixture
def jobs(make_job):
    later = timezone.now() + datetime.timedelta(hours=1)
    made = [make_job("noop") for _ in range(3)]
    made.append(make_job("noop", execute_at=later))
    made.append(make_job("fail", failed_at=timezone.now()))
    return made


@pytest.fixture
def schedule_row(db):
    return ScheduleState.objects.create(
        queue="default",
        name="noop",
        expression="0 3 * * *",
        last_due_at=timezone.now(),
    )


def assert_answered(response, where: str) -> None:
    assert response.status_code < 500, f"{where} answered {response.status_code}"


def snapshot() -> list[tuple]:
    return list(Job.objects.order_by("id").values_list("id", "execute_at", "failed_at"))


@pytest.mark.django_db
@pytest.mark.parametrize("view", LIST_VIEWS)
@pytest.mark.parametrize("param", LIST_PARAMS)
def test_job_list_answers_every_bad_parameter(operator_client, jobs, view, param):
    before = snapshot()
    for value in VALUES:
        response = operator_client.get(url(view), {param: value})
        assert_answered(response, f"{view}?{param}={value[:30]!r}")
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("view", LIST_VIEWS)
@pytest.mark.parametrize(
    "value", ["99999999999999999999", "-1", "0", "abc", "1\x00", "1e9"]
)
def test_job_list_says_which_page_it_could_not_show(operator_client, jobs, view, value):
    response = operator_client.get(url(view), {"page": value})

    assert response.status_code == 200
    html = response.content.decode()
    assert BAD_PAGE_MESSAGE in html
    assert "showing page 1" in html


@pytest.mark.django_db
@pytest.mark.parametrize("param", DASHBOARD_PARAMS)
def test_dashboard_answers_every_bad_table_parameter(operator_client, jobs, param):
    for name in (param, param.split("-")[1]):
        for value in VALUES:
            response = operator_client.get(url("changelist"), {name: value})
            assert_answered(response, f"dashboard?{name}={value[:30]!r}")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/admin/dpq/job/{}/",
        "/admin/dpq/job/{}/change/",
        "/admin/dpq/job/{}/history/",
        "/admin/dpq/job/{}/delete/",
        "/admin/dpq/schedulestate/{}/change/",
        "/admin/dpq/schedulestate/{}/history/",
    ],
)
def test_pages_answer_every_bad_path_argument(operator_client, jobs, path):
    for value in PATH_VALUES:
        response = operator_client.get(path.format(value))
        assert_answered(response, path.format(value[:30]))


@pytest.mark.django_db
@pytest.mark.parametrize("view", ["run", "pause", "resume"])
def test_schedule_actions_answer_every_bad_id(admin_client, schedule_row, view):
    for value in PATH_VALUES:
        response = admin_client.post(f"/admin/dpq/schedulestate/{value}/{view}/")
        assert_answered(response, f"schedule {view} {value[:30]}")
    base = reverse(f"admin:dpq_schedulestate_{view}", args=[schedule_row.pk])
    assert base.endswith(f"/{schedule_row.pk}/{view}/")


@pytest.mark.django_db
def test_schedule_list_answers_every_bad_parameter(admin_client, schedule_row):
    for param in SCHEDULE_PARAMS:
        for value in VALUES:
            response = admin_client.get(
                reverse("admin:dpq_schedulestate_changelist"), {param: value}
            )
            assert_answered(response, f"schedules?{param}={value[:30]!r}")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field", ["action", "ids", "reset_attempts", "confirm", "next", "index"]
)
def test_action_answers_every_bad_field(operator_client, jobs, field):
    before = snapshot()
    failed = str(jobs[-1].pk)
    for value in VALUES:
        data = {"action": "delete_jobs", "ids": [failed], field: value}
        response = operator_client.post(url("action"), data)
        assert_answered(response, f"action {field}={value[:30]!r}")
    # Only "confirm" could delete, and no bad value of it is "yes".
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["queue", "task", "reset_attempts", "next"])
def test_requeue_failed_answers_every_bad_field(operator_client, jobs, field):
    for value in VALUES:
        response = operator_client.post(url("requeue_failed"), {field: value})
        assert_answered(response, f"requeue-failed {field}={value[:30]!r}")


@pytest.mark.django_db
def test_health_page_answers_any_parameter(operator_client, jobs):
    for value in VALUES:
        response = operator_client.get(url("health"), {"page": value, "sort": value})
        assert_answered(response, f"health?page={value[:30]!r}")
