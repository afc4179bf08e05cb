"""dpq.driver: the driver Django runs, its errors, and notifications on a raw connection."""

from __future__ import annotations

import time

import pytest
from django.db import DatabaseError, connection

from dpq import driver, sql
from tests.conftest import current_database_url, wait_until


@pytest.fixture
def listener():
    """A raw autocommit connection listening on dpq-driver-a and dpq-driver-b."""
    raw = driver.connect(current_database_url())
    raw.autocommit = True
    with raw.cursor() as cursor:
        cursor.execute(sql.listen_statement("dpq-driver-a", raw))
        cursor.execute(sql.listen_statement("dpq-driver-b", raw))
    yield raw
    raw.close()


def notify(*channels: str) -> None:
    """Send one notification per channel from another connection, committed."""
    raw = driver.connect(current_database_url())
    raw.autocommit = True
    try:
        with raw.cursor() as cursor:
            for channel in channels:
                cursor.execute(sql.NOTIFY, {"channel": channel})
    finally:
        raw.close()


@pytest.mark.django_db
def test_driver_is_the_one_django_connects_with():
    connection.ensure_connection()

    assert type(connection.connection).__module__.split(".")[0] == driver.name


@pytest.mark.django_db
def test_sqlstate_reads_the_driver_error_behind_a_django_error():
    with pytest.raises(DatabaseError) as info, connection.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")

    assert driver.sqlstate(info.value) == "22012"


@pytest.mark.django_db(transaction=True)
def test_received_notifies_keeps_what_the_caller_leaves(listener):
    notify("dpq-driver-a", "dpq-driver-b")
    wait_until(lambda: len(driver.received_notifies(listener)) == 2)

    received = driver.received_notifies(listener)
    taken = [n for n in received if n.channel == "dpq-driver-a"]
    received[:] = [n for n in received if n.channel != "dpq-driver-a"]

    assert [n.channel for n in taken] == ["dpq-driver-a"]
    assert [n.channel for n in driver.received_notifies(listener)] == ["dpq-driver-b"]


@pytest.mark.django_db(transaction=True)
def test_received_notifies_include_those_read_during_a_query(listener):
    notify("dpq-driver-a")
    # PostgreSQL sends the listener what arrived before the query ends (before its
    # ReadyForQuery), so the driver reads it while reading the query's result.
    with listener.cursor() as cursor:
        cursor.execute("SELECT 1")

    assert [n.channel for n in driver.received_notifies(listener)] == ["dpq-driver-a"]


@pytest.mark.django_db(transaction=True)
def test_wait_for_notifies_returns_when_a_notification_arrives(listener):
    started = time.monotonic()
    notify("dpq-driver-a")

    driver.wait_for_notifies(listener, 30)

    assert time.monotonic() - started < 10
    wait_until(lambda: driver.received_notifies(listener))


@pytest.mark.django_db(transaction=True)
def test_wait_for_notifies_returns_at_the_timeout_when_nothing_arrives(listener):
    started = time.monotonic()

    driver.wait_for_notifies(listener, 0.3)

    assert 0.2 < time.monotonic() - started < 10
    assert driver.received_notifies(listener) == []


def test_error_message_keeps_every_host_libpq_tried_on_one_line():
    libpq = (
        'connection to server at "10.0.0.1", port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
        'connection to server at "10.0.0.2", port 5432 failed: session is read-only\n'
    )

    assert driver.error_message(driver.OperationalError(libpq)) == (
        'connection to server at "10.0.0.1", port 5432 failed: Connection refused '
        "Is the server running on that host and accepting TCP/IP connections?; "
        'connection to server at "10.0.0.2", port 5432 failed: session is read-only'
    )
    assert driver.error_message(driver.OperationalError("")) == "OperationalError"
