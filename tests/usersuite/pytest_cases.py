"""A user's own pytest-django tests that run jobs (run by tests/test_user_suites.py)."""

from __future__ import annotations

import pytest

from dpq.models import Job
from tests.testapp.models import Effect
from tests.usersuite.tests import committed_start_records, queue


@pytest.mark.django_db
def test_run_once_in_the_db_fixture() -> None:
    job = queue.enqueue("record")

    ran, _, exc = queue.run_once()

    assert (ran.id, exc) == (job.id, None)
    assert Effect.objects.filter(job_id=job.id).exists()
    assert not Job.objects.exists()
    assert committed_start_records() == 0


@pytest.mark.django_db(transaction=True)
def test_run_once_in_the_transactional_db_fixture() -> None:
    job = queue.enqueue("fail")

    ran, _, exc = queue.run_once()

    assert ran.id == job.id and isinstance(exc, ValueError)
    assert committed_start_records() == 0


def test_the_dpq_fixtures_run_and_check_jobs(
    dpq_run_jobs, dpq_assert_enqueued, django_assert_num_queries
) -> None:
    with django_assert_num_queries(1):
        queue.enqueue("record", {"note": "with fixtures"})

    dpq_assert_enqueued("record", args={"note": "with fixtures"})
    [outcome] = dpq_run_jobs(queue)

    assert outcome.succeeded
    assert Effect.objects.filter(job_id=outcome.job.id).exists()
    assert committed_start_records() == 0


def test_the_dpq_assert_enqueued_fixture_lists_what_was_enqueued(
    dpq_assert_enqueued,
) -> None:
    queue.enqueue("noop")

    with pytest.raises(AssertionError, match="'noop' on queue 'default'"):
        dpq_assert_enqueued("record")
