"""A worker thread prepares its one-job claim once per connection, and copes when it is gone."""

from __future__ import annotations

import logging
import threading

import pytest
from django.db import DatabaseError, connection, transaction

from dpq import sql
from dpq.jobs import PreparedClaimMissing
from dpq.models import Job
from tests.conftest import start_thread


def spy(sent: list[str]):
    def wrapper(execute, statement, params, many, context):
        sent.append(statement)
        return execute(statement, params, many, context)

    return connection.execute_wrapper(wrapper)


@pytest.fixture
def no_prepared_statements():
    yield
    connection.close()  # prepared statements live as long as the session


@pytest.mark.django_db(transaction=True)
def test_a_prepared_claim_is_executed_and_claims_the_best_job(
    queue, make_job, no_prepared_statements
):
    low, high = make_job(priority=0), make_job(priority=5)
    queue.prepare_claim()
    sent: list[str] = []

    with spy(sent), transaction.atomic():
        first = queue.claim()
        second = queue.claim(exclude_ids=[high.id])
    with spy(sent), transaction.atomic():
        none_left = queue.claim()

    assert [job.id for job in first + second] == [high.id, low.id]
    assert none_left == []
    assert not Job.objects.exists()
    assert len(sent) == 3
    assert all(statement.startswith("EXECUTE ") for statement in sent), sent


@pytest.mark.django_db(transaction=True)
def test_a_new_connection_claims_unprepared_until_prepared_again(
    queue, make_job, no_prepared_statements
):
    job = make_job()
    queue.prepare_claim()
    connection.close()
    sent: list[str] = []

    with spy(sent), transaction.atomic():
        (claimed,) = queue.claim()
        transaction.set_rollback(True)

    assert claimed.id == job.id
    assert not sent[0].lstrip().startswith("EXECUTE"), sent


@pytest.mark.django_db(transaction=True)
def test_a_prepared_claim_gone_missing_fails_once_then_claims_unprepared(
    queue, make_job, caplog, no_prepared_statements
):
    job = make_job()
    queue.prepare_claim()
    with connection.cursor() as cursor:
        cursor.execute(
            "DEALLOCATE ALL"
        )  # what a pooler's next server connection looks like

    with caplog.at_level(logging.WARNING, logger="dpq"):
        with pytest.raises(DatabaseError), transaction.atomic():
            queue.claim()
        with transaction.atomic():
            (claimed,) = queue.claim()
        queue.prepare_claim()  # a new connection would prepare again: not any more

    assert claimed.id == job.id
    assert "went missing" in caplog.text
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_a_prepared_claim_already_there_on_a_new_connection_is_given_up(
    queue, caplog, no_prepared_statements
):
    prepare, _ = sql.prepared_claim()
    with connection.cursor() as cursor:
        cursor.execute(prepare)  # as another client's, on a session a pooler shares

    with caplog.at_level(logging.WARNING, logger="dpq"):
        queue.prepare_claim()
        with transaction.atomic():
            assert queue.claim() == []

    assert "was there before it was prepared" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_prepared_claim_gone_missing_in_one_thread_stops_every_thread_preparing(
    queue, make_job, caplog, no_prepared_statements
):
    """One fallback for the process: the other threads' prepared claims are not run again."""
    job = make_job()
    prepared = threading.Event()
    fell_back = threading.Event()
    sent: list[str] = []

    def other_thread() -> list:
        queue.prepare_claim()  # on this thread's own connection
        prepared.set()
        fell_back.wait(30)
        with spy(sent), transaction.atomic():
            return queue.claim()

    other = start_thread(other_thread)
    prepared.wait(30)
    queue.prepare_claim()
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    with caplog.at_level(logging.WARNING, logger="dpq"):
        with pytest.raises(PreparedClaimMissing), transaction.atomic():
            queue.claim()
    fell_back.set()
    other.join(30)

    assert other.error is None
    assert [claimed.id for claimed in other.result] == [job.id]
    assert not any(statement.startswith("EXECUTE ") for statement in sent), sent
    assert caplog.text.count("went missing") == 1
