"""JobTransaction behaves as transaction.atomic() does, with BEGIN and COMMIT sent by itself."""

from __future__ import annotations

import contextlib

import psycopg2
import pytest
from django.db import (
    DatabaseError,
    IntegrityError,
    ProgrammingError,
    connection,
    transaction,
)
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from dpq import sql, transactions
from dpq.transactions import JobTransaction
from tests.testapp.models import Effect


def committed_effects(other_connection) -> set[int]:
    """Job ids of the Effects another session sees: what is committed."""
    other_connection.rollback()
    with other_connection.cursor() as cursor:
        cursor.execute("SELECT job_id FROM testapp_effect")
        return {row[0] for row in cursor.fetchall()}


def assert_connection_at_rest() -> None:
    assert connection.get_autocommit()
    assert not connection.in_atomic_block
    assert connection.connection.autocommit
    assert transactions.current("default") is None


@pytest.mark.django_db(transaction=True)
def test_writes_commit_at_the_end_and_not_before(other_connection):
    with JobTransaction("default"):
        Effect.objects.create(job_id=1)
        Effect.objects.create(job_id=2)
        assert committed_effects(other_connection) == set()

    assert committed_effects(other_connection) == {1, 2}
    assert_connection_at_rest()


@pytest.mark.django_db(transaction=True)
def test_an_exception_rolls_everything_back_and_propagates(other_connection):
    with pytest.raises(ZeroDivisionError), JobTransaction("default"):
        Effect.objects.create(job_id=1)
        1 / 0  # noqa: B018

    assert committed_effects(other_connection) == set()
    assert_connection_at_rest()
    Effect.objects.create(job_id=2)  # the connection is usable
    assert committed_effects(other_connection) == {2}


@pytest.mark.django_db(transaction=True)
def test_set_rollback_rolls_back(other_connection):
    connection.ensure_connection()
    driver_connection = connection.connection
    with JobTransaction("default"):
        Effect.objects.create(job_id=1)
        transaction.set_rollback(True)

    assert committed_effects(other_connection) == set()
    assert_connection_at_rest()
    assert connection.connection is driver_connection  # rolled back, not closed


@pytest.mark.django_db(transaction=True)
def test_nested_atomic_is_a_savepoint(other_connection):
    with JobTransaction("default"):
        Effect.objects.create(job_id=1)
        with pytest.raises(IntegrityError), transaction.atomic():
            Effect.objects.create(job_id=1)
        Effect.objects.create(job_id=2)

    assert committed_effects(other_connection) == {1, 2}


@pytest.mark.django_db(transaction=True)
def test_on_commit_runs_after_the_commit_and_not_after_a_rollback(other_connection):
    calls = []
    with JobTransaction("default"):
        Effect.objects.create(job_id=1)
        transaction.on_commit(lambda: calls.append(committed_effects(other_connection)))
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            transaction.on_commit(lambda: calls.append("dropped with its savepoint"))
            1 / 0  # noqa: B018
        assert calls == []
    assert calls == [{1}]

    with pytest.raises(ZeroDivisionError), JobTransaction("default"):
        Effect.objects.create(job_id=2)
        transaction.on_commit(lambda: calls.append("rolled back"))
        1 / 0  # noqa: B018
    assert calls == [{1}]


@pytest.mark.django_db(transaction=True)
def test_commit_inside_and_a_nested_durable_block_are_refused():
    with JobTransaction("default"):
        with pytest.raises(TransactionManagementError):
            transaction.commit()
        with pytest.raises(TransactionManagementError):
            transaction.set_autocommit(True)
        with (
            pytest.raises(RuntimeError, match="durable"),
            transaction.atomic(durable=True),
        ):
            pass
    assert_connection_at_rest()


@pytest.mark.django_db(transaction=True)
def test_a_deferred_statement_is_sent_with_the_commit_and_dropped_on_rollback(
    other_connection,
):
    insert = "INSERT INTO testapp_effect (job_id, note) VALUES (%(id)s, '')"
    with JobTransaction("default") as job_transaction:
        Effect.objects.create(job_id=1)
        job_transaction.defer(insert, {"id": 2})
        assert committed_effects(other_connection) == set()
        assert not Effect.objects.filter(job_id=2).exists()  # not sent yet
    assert committed_effects(other_connection) == {1, 2}

    with JobTransaction("default") as job_transaction:
        Effect.objects.create(job_id=3)
        job_transaction.defer(insert, {"id": 4})
        transaction.set_rollback(True)
    assert committed_effects(other_connection) == {1, 2}


@pytest.mark.django_db(transaction=True)
def test_a_failing_deferred_statement_rolls_back_and_raises(other_connection):
    with pytest.raises(IntegrityError), JobTransaction("default") as job_transaction:
        Effect.objects.create(job_id=1)
        job_transaction.defer(
            "INSERT INTO testapp_effect (job_id, note) VALUES (%(id)s, '')", {"id": 1}
        )

    assert committed_effects(other_connection) == set()
    assert_connection_at_rest()


@pytest.mark.django_db(transaction=True)
def test_an_error_caught_without_a_savepoint_fails_the_commit(other_connection):
    with pytest.raises(DatabaseError, match="rolled back at commit"):
        with JobTransaction("default"):
            Effect.objects.create(job_id=1)
            # A raw cursor: Django would otherwise refuse the next statement itself.
            with connection.connection.cursor() as cursor:
                with contextlib.suppress(psycopg2.errors.DivisionByZero):
                    cursor.execute("SELECT 1 / 0")

    assert committed_effects(other_connection) == set()
    assert_connection_at_rest()


@pytest.mark.django_db(transaction=True)
def test_inside_an_open_transaction_it_is_a_savepoint(other_connection):
    with transaction.atomic():
        Effect.objects.create(job_id=1)
        with JobTransaction("default") as job_transaction:
            assert transactions.current("default") is None
            job_transaction.defer(
                "INSERT INTO testapp_effect (job_id, note) VALUES (%(id)s, '')",
                {"id": 2},
            )
            assert Effect.objects.filter(job_id=2).exists()  # sent at once
            transaction.set_rollback(True)
        assert committed_effects(other_connection) == set()
        assert Effect.objects.filter(job_id=1).exists()
    assert committed_effects(other_connection) == {1}


def spy(sent: list[str]):
    def wrapper(execute, statement, params, many, context):
        sent.append(statement)
        return execute(statement, params, many, context)

    return connection.execute_wrapper(wrapper)


@pytest.mark.django_db(transaction=True)
def test_begin_travels_with_the_first_statement_and_commit_with_the_deferred_one():
    outer: list[str] = []
    inner: list[str] = []

    # A spy entered inside the job transaction sees what reaches the driver; one entered
    # outside sees the statements as sent, and the commit (sent once the inner one is gone).
    with spy(outer), JobTransaction("default") as job_transaction, spy(inner):
        Effect.objects.create(job_id=1)
        Effect.objects.create(job_id=2)
        job_transaction.defer("SELECT 1")

    assert len(inner) == 2
    assert inner[0].startswith(f"{sql.BEGIN_TRANSACTION}; INSERT INTO")
    assert inner[1].startswith("INSERT INTO")
    assert outer[2:] == [f"SELECT 1; {sql.COMMIT_TRANSACTION}"]
    assert Effect.objects.count() == 2


INSERT_EFFECT = "INSERT INTO testapp_effect (job_id, note) VALUES (%(id)s, '')"
INSERT_NOTE = "INSERT INTO testapp_effect (job_id, note) VALUES (%(n)s, 'next')"


def held_block(job_id: int) -> None:
    """A job's transaction as a worker thread runs it: its commit held for what comes next."""
    with JobTransaction("default", hold_commit=True) as job_transaction:
        Effect.objects.create(job_id=job_id)
        job_transaction.defer(INSERT_EFFECT, {"id": job_id + 100})


@pytest.mark.django_db(transaction=True)
def test_a_held_commit_goes_with_the_next_blocks_first_statement(other_connection):
    held_block(1)
    assert committed_effects(other_connection) == set()  # held, not sent
    assert connection.get_autocommit() and not connection.in_atomic_block

    sent: list[str] = []
    with JobTransaction("default"), spy(sent):
        with connection.cursor() as cursor:
            cursor.execute(INSERT_NOTE, {"n": 2})
        assert committed_effects(other_connection) == {1, 101}
        transaction.set_rollback(True)

    assert sent == [
        f"{INSERT_EFFECT}; {sql.COMMIT_TRANSACTION}; {sql.BEGIN_TRANSACTION}; "
        + INSERT_NOTE
    ]
    assert committed_effects(other_connection) == {1, 101}
    assert_connection_at_rest()


@pytest.mark.django_db(transaction=True)
def test_a_held_commit_is_sent_alone_when_the_next_block_sends_nothing(
    other_connection,
):
    held_block(1)
    with JobTransaction("default"):
        transaction.set_rollback(True)
    assert committed_effects(other_connection) == {1, 101}

    held_block(2)
    transactions.send_held_commit("default")
    assert committed_effects(other_connection) == {1, 101, 2, 102}
    transactions.send_held_commit("default")  # nothing held: nothing sent
    assert_connection_at_rest()


@pytest.mark.django_db(transaction=True)
def test_a_statement_between_blocks_sends_the_held_commit_first(other_connection):
    held_block(1)
    assert Effect.objects.count() == 2  # through Django's cursor
    assert committed_effects(other_connection) == {1, 101}
    assert len(connection.execute_wrappers) == 0

    # So does a plain atomic() block: the commit goes before it begins.
    held_block(2)
    with transaction.atomic():
        Effect.objects.create(job_id=3)
        assert committed_effects(other_connection) == {1, 101, 2, 102}
        transaction.set_rollback(True)
    assert committed_effects(other_connection) == {1, 101, 2, 102}


@pytest.mark.django_db(transaction=True)
def test_the_commit_is_held_without_a_deferred_statement_but_not_in_error_or_with_on_commit(
    other_connection,
):
    with JobTransaction("default", hold_commit=True):
        Effect.objects.create(job_id=1)
    assert committed_effects(other_connection) == set()  # a lone COMMIT, held
    transactions.send_held_commit("default")
    assert committed_effects(other_connection) == {1}

    # In error, a held COMMIT would answer ROLLBACK unheard: it is sent, and raises.
    with pytest.raises(DatabaseError, match="rolled back at commit"):
        with JobTransaction("default", hold_commit=True):
            Effect.objects.create(job_id=2)
            with connection.connection.cursor() as cursor:
                with contextlib.suppress(psycopg2.errors.DivisionByZero):
                    cursor.execute("SELECT 1 / 0")
    assert not transactions.holds_commit(connection)
    assert committed_effects(other_connection) == {1}

    calls = []
    with JobTransaction("default", hold_commit=True) as job_transaction:
        Effect.objects.create(job_id=3)
        transaction.on_commit(lambda: calls.append(committed_effects(other_connection)))
        job_transaction.defer(INSERT_EFFECT, {"id": 103})
    assert calls == [{1, 3, 103}]
    assert_connection_at_rest()


@pytest.mark.django_db(transaction=True)
def test_a_held_commit_that_fails_rolls_its_job_back_and_raises_in_the_next_block(
    other_connection,
):
    with JobTransaction("default", hold_commit=True) as job_transaction:
        Effect.objects.create(job_id=1)
        job_transaction.defer(INSERT_EFFECT, {"id": 1})  # a duplicate: fails when sent

    with pytest.raises(IntegrityError), JobTransaction("default"):
        Effect.objects.create(job_id=2)

    assert committed_effects(other_connection) == set()
    assert_connection_at_rest()
    Effect.objects.create(job_id=3)
    assert committed_effects(other_connection) == {3}


@pytest.mark.django_db(transaction=True)
def test_a_held_commit_dies_with_its_connection(other_connection, caplog):
    held_block(1)
    connection.close()

    with JobTransaction("default"):
        Effect.objects.create(job_id=2)

    assert "connection closed first" in caplog.text
    assert committed_effects(other_connection) == {2}
    assert_connection_at_rest()


@pytest.mark.django_db(transaction=True)
def test_fetch_all_sends_the_held_commit_and_begin_in_front(other_connection):
    held_block(1)
    with JobTransaction("default") as job_transaction:
        assert job_transaction.fetch_all("SELECT %(x)s", {"x": 5}) == [(5,)]
        assert committed_effects(other_connection) == {1, 101}
        assert job_transaction.fetch_all(INSERT_NOTE, {"n": 2}) == []
        assert connection.connection.info.transaction_status == (
            psycopg2.extensions.TRANSACTION_STATUS_INTRANS
        )
        transaction.set_rollback(True)
    assert committed_effects(other_connection) == {1, 101}
    assert_connection_at_rest()


@pytest.mark.django_db(transaction=True)
def test_fetch_all_goes_through_djangos_cursor_when_statements_are_watched():
    sent: list[str] = []
    with JobTransaction("default") as job_transaction, spy(sent):
        job_transaction.fetch_all("SELECT 1")
    assert sent == [f"{sql.BEGIN_TRANSACTION}; SELECT 1"]

    with CaptureQueriesContext(connection) as queries:
        with JobTransaction("default") as job_transaction:
            job_transaction.fetch_all("SELECT 2")
    assert f"{sql.BEGIN_TRANSACTION}; SELECT 2" in [q["sql"] for q in queries]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("use_tz", [True, False])
def test_fetch_all_on_the_driver_behaves_as_djangos_cursor(use_tz, settings):
    settings.USE_TZ = use_tz
    statement = "SELECT %(at)s::timestamptz"
    params = {"at": "2026-01-02 03:04:05+00"}
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        expected = cursor.fetchall()
    with JobTransaction("default") as job_transaction:
        assert job_transaction.fetch_all(statement, params) == expected
        assert (expected[0][0].tzinfo is not None) == use_tz
        # Errors are Django's, as through its cursor.
        with pytest.raises(ProgrammingError) as caught:
            job_transaction.fetch_all("SELECT * FROM dpq_no_such_table")
        assert isinstance(caught.value.__cause__, psycopg2.errors.UndefinedTable)
        transaction.set_rollback(True)
    assert_connection_at_rest()
