"""dpq's statements run on a cursor kept per connection: still seen by Django's query log and
execute_wrapper(), still translated errors, and a new one after a reconnect."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from dpq import sql


@pytest.mark.django_db
def test_statements_are_in_the_query_log_while_it_records(queue):
    queue.enqueue("record", {"note": "before"})  # the kept cursor exists from here

    with CaptureQueriesContext(connection) as captured:
        queue.enqueue("record", {"note": "logged"})
        queue.claim()

    texts = [query["sql"] for query in captured.captured_queries]
    assert any("INSERT INTO" in text for text in texts), texts
    assert any("DELETE FROM" in text for text in texts), texts


@pytest.mark.django_db
def test_execute_wrapper_sees_every_statement(queue):
    queue.enqueue("record", {"note": "before"})
    seen = []

    def record(execute, text, params, many, context):
        seen.append(text)
        return execute(text, params, many, context)

    with connection.execute_wrapper(record):
        queue.enqueue("record", {"note": "wrapped"})
        queue.claim()

    assert len(seen) == 2, seen


@pytest.mark.django_db
def test_errors_are_django_errors_and_the_cursor_goes_on():
    sql.fetch_one("default", "SELECT 1")
    with pytest.raises(DatabaseError, match="division by zero"):
        with transaction.atomic():
            sql.fetch_one("default", "SELECT 1 / 0")

    assert sql.fetch_one("default", "SELECT 2") == (2,)


@pytest.mark.django_db(transaction=True)
def test_a_new_connection_gets_a_new_cursor(queue):
    assert sql.fetch_one("default", "SELECT pg_backend_pid()")[0] is not None
    first = sql.fetch_one("default", "SELECT pg_backend_pid()")[0]
    connection.close()

    second = sql.fetch_one("default", "SELECT pg_backend_pid()")[0]

    assert second != first
    queue.enqueue("record", {"note": "after a reconnect"})
    assert len(queue.claim()) == 1
