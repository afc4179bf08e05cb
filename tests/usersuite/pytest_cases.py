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
