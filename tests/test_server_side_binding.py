"""A database whose OPTIONS set server_side_binding (psycopg 3 binds parameters on the server;
psycopg2 ignores the option): every statement dpq sends on a claim's way still runs."""

from __future__ import annotations

import pytest
from django.db import connections

from dpq.queue import AtLeastOnceQueue
from tests import tasks
from tests.testapp.models import Effect

ALIAS = "server_binding"


@pytest.fixture
def bound_queue():
    q = AtLeastOnceQueue(tasks=tasks.TASKS, notify_channel="dpq-tests", using=ALIAS)
    yield q
    q.close()
    connections[ALIAS].close()


@pytest.mark.django_db(transaction=True, databases=["default", ALIAS])
def test_server_side_binding_enqueues_claims_and_runs_a_job(bound_queue):
    bound_queue.prepare_claim()
    job = bound_queue.enqueue("record", {"note": "bound"})

    job_run, _, exc = bound_queue.run_once()

    assert exc is None
    assert job_run.id == job.id
    assert Effect.objects.using(ALIAS).filter(job_id=job.id).exists()


@pytest.mark.django_db(transaction=True, databases=["default", ALIAS])
def test_server_side_binding_puts_a_failed_job_back(bound_queue):
    job = bound_queue.enqueue("fail", {})

    _, _, exc = bound_queue.run_once()

    assert exc is not None
    job.refresh_from_db(using=ALIAS)
    assert job.attempts == 1
