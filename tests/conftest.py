"""Fixtures shared by the whole suite: job factories, queues, waiting without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.db import connection

from dpq.models import Job
from dpq.queue import AtLeastOnceQueue
from tests import tasks


def wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05
):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


@pytest.fixture
def queue():
    """An at-least-once queue over the test tasks; its crash-accounting connection is closed after."""
    q = AtLeastOnceQueue(tasks=tasks.TASKS, notify_channel="dpq-tests")
    yield q
    q.close()


@pytest.fixture
def make_job(queue):
    """Factory: ``make_job(task="noop", args={}, priority=0, ...)`` enqueues through the queue."""

    def make(task: str = "noop", args=None, **fields) -> Job:
        on_queue = fields.pop("queue", None) or queue
        job = on_queue.enqueue(task, args if args is not None else {})
        if fields:
            Job.objects.filter(id=job.id).update(**fields)
            job.refresh_from_db()
        return job

    return make


@pytest.fixture
def count_jobs():
    def count(**filters) -> int:
        return Job.objects.filter(**filters).count()

    return count


@pytest.fixture(autouse=True)
def _reset_queue_connections(django_db_blocker):
    yield
    # A test that got the database through a fixture (dpq_run_jobs) has lost access by now.
    if connection.connection is not None:
        with django_db_blocker.unblock():
            connection.close_if_unusable_or_obsolete()


def current_database_url() -> str:
    """The URL of the database the running test uses (pytest-django's test database).

    Child processes get it through their environment so that they work on the same tables.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    auth = db["USER"] or ""
    if db.get("PASSWORD"):
        auth += ":" + db["PASSWORD"]
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that works on the test database."""
    import os

    env = dict(os.environ)
    env.update(
        DATABASE_URL=current_database_url(),
        DJANGO_SETTINGS_MODULE="tests.settings",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def other_connection():
    """A second, raw driver connection to the test database (autocommit off), closed after."""
    raw = connection.get_new_connection(connection.get_connection_params())
    yield raw
    raw.close()


@pytest.fixture
def gate():
    """The gate that tests.tasks.wait_at_gate stops at; opened at teardown so no thread hangs."""
    tasks.GATE = tasks.Gate()
    yield tasks.GATE
    tasks.GATE.release.set()


def run_threads(
    target: Callable[[], object], count: int, timeout: float = 60.0
) -> list:
    """Run ``target`` in ``count`` threads, each with its own connection; return their results.

    A thread's exception fails the test; each thread closes its connection when done.
    """
    import threading

    results: list = [None] * count
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = target()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    alive = [t for t in threads if t.is_alive()]
    assert not alive, f"{len(alive)} thread(s) still running after {timeout}s"
    if errors:
        raise errors[0]
    return results


def start_thread(target: Callable[[], object]):
    """Start ``target`` in a thread that closes its own connection when done; return the thread.

    The thread's result or exception is kept on ``thread.result`` / ``thread.error``.
    """
    import threading

    def run() -> None:
        try:
            thread.result = target()
        except BaseException as exc:
            thread.error = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.result = thread.error = None
    thread.start()
    return thread


@pytest.fixture
def lock_timeout():
    """Make this thread's connection give up on a row lock after 10 s instead of hanging.

    For tests of statements that must skip locked rows: should one wait, it fails in
    seconds instead of blocking the suite.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '10s'")
    yield
    if connection.connection is not None and not connection.needs_rollback:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
