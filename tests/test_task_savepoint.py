"""A worker's job: the task's savepoint is opened by the task's first statement, if any.

Each test runs a job as a worker thread runs it (``JobTransaction``, commit held for the next
claim), in this process, so that the task can look at the connection while it runs.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import psycopg2
import psycopg2.extensions
import pytest
from django.db import IntegrityError, connection, transaction

from dpq import exceptions, transactions
from dpq.models import Job, JobStart
from dpq.queue import AtLeastOnceQueue
from dpq.retry import FixedBackoff
from dpq.transactions import JobTransaction, TaskSavepoint
from tests.testapp.models import Effect

INSERT_EFFECT = "INSERT INTO testapp_effect (job_id, note) VALUES (%s, '')"

# What the last task saw while it ran, and the texts its statements on Django's cursor sent.
SEEN: dict[str, object] = {}
QUERIES: list[bytes] = []


def task_savepoint() -> TaskSavepoint | None:
    """The TaskSavepoint waiting on this connection, from the cursor factory it installed."""
    return getattr(connection.connection.cursor_factory, "__self__", None)


def write_with_the_orm(job_id: int) -> None:
    Effect.objects.create(job_id=job_id)


def write_with_djangos_cursor(job_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(INSERT_EFFECT, [job_id])
        QUERIES.append(cursor.cursor.query)


def write_with_the_drivers_cursor(job_id: int) -> None:
    with connection.connection.cursor() as cursor:
        cursor.execute(INSERT_EFFECT, [job_id])


def write_with_executemany(job_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(INSERT_EFFECT, [[job_id], [job_id + 1]])


def write_with_copy(job_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.copy_expert(
            "COPY testapp_effect (job_id, note) FROM STDIN",
            io.StringIO(f"{job_id}\tx\n"),
        )


def write_with_copy_from(job_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.copy_from(
            io.StringIO(f"{job_id}\tx\n"), "testapp_effect", columns=["job_id", "note"]
        )


def write_after_a_named_cursor(job_id: int) -> None:
    # iterator() reads through a named (server-side) cursor: DECLARE ... FOR the query.
    assert list(Effect.objects.iterator(chunk_size=10)) == []
    Effect.objects.create(job_id=job_id)


def write_in_atomic(job_id: int) -> None:
    with transaction.atomic():
        Effect.objects.create(job_id=job_id)


WRITES: dict[str, Callable[[int], None]] = {
    "orm": write_with_the_orm,
    "django cursor": write_with_djangos_cursor,
    "driver cursor": write_with_the_drivers_cursor,
    "executemany": write_with_executemany,
    "copy_expert": write_with_copy,
    "copy_from": write_with_copy_from,
    "named cursor": write_after_a_named_cursor,
    "atomic": write_in_atomic,
}


def see(queue, job) -> None:
    SEEN["savepoint"] = task_savepoint()


def write(queue, job) -> None:
    SEEN["savepoint"] = task_savepoint()
    WRITES[job.args["how"]](job.id)


def read_with_callproc(queue, job) -> None:
    SEEN["savepoint"] = task_savepoint()
    with connection.cursor() as cursor:
        cursor.callproc("version")


def read_with_copy_to(queue, job) -> None:
    SEEN["savepoint"] = task_savepoint()
    with connection.cursor() as cursor:
        cursor.copy_to(io.StringIO(), "testapp_effect")


def write_then_fail(queue, job) -> None:
    write(queue, job)
    raise RuntimeError("failing after its writes")


def catch_an_integrity_error(queue, job) -> None:
    Effect.objects.create(job_id=job.id)
    with pytest.raises(IntegrityError), transaction.atomic():
        Effect.objects.create(job_id=job.id)
    Effect.objects.create(job_id=job.id + 1)


def fail_on_a_cursor_of_its_own_class(queue, job) -> None:
    factory = psycopg2.extensions.cursor
    with connection.connection.cursor(cursor_factory=factory) as cursor:
        try:
            cursor.execute("SELECT 1 / 0")
        except psycopg2.errors.DivisionByZero:
            pass


TASKS = {
    "see": see,
    "write": write,
    "read_with_callproc": read_with_callproc,
    "read_with_copy_to": read_with_copy_to,
    "write_then_fail": write_then_fail,
    "catch_an_integrity_error": catch_an_integrity_error,
    "fail_on_a_cursor_of_its_own_class": fail_on_a_cursor_of_its_own_class,
}


@pytest.fixture
def savepoint_queue():
    q = AtLeastOnceQueue(tasks=TASKS, name="savepoints", backoff=FixedBackoff(60))
    SEEN.clear()
    QUERIES.clear()
    yield q
    transactions.send_held_commit("default")
    q.close()


def run_as_a_worker_thread(queue: AtLeastOnceQueue, *, solo: bool = False):
    """Claim and run one job in a JobTransaction whose commit is held, then send the commit."""
    with JobTransaction("default", hold_commit=True):
        (job,) = queue.claim()
        result = queue.process_job(job, solo=solo)
    assert transactions.holds_commit(connection)
    transactions.send_held_commit("default")
    return result


def effect_ids() -> set[int]:
    return set(Effect.objects.values_list("job_id", flat=True))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("solo", [False, True], ids=["beside others", "solo"])
def test_a_task_that_sends_no_statement_opens_no_savepoint(savepoint_queue, solo):
    job = savepoint_queue.enqueue("see")

    _, _, exc = run_as_a_worker_thread(savepoint_queue, solo=solo)

    assert exc is None
    savepoint = SEEN["savepoint"]
    assert isinstance(savepoint, TaskSavepoint)
    assert not savepoint.opened
    # Cursors made after the task are the connection's own again.
    assert connection.connection.cursor_factory is psycopg2.extensions.cursor
    assert not Job.objects.filter(id=job.id).exists()
    assert not JobStart.objects.exists()  # a solo start was recorded, then cleared


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", WRITES)
def test_the_writes_of_a_task_commit_with_its_job(savepoint_queue, how):
    job = savepoint_queue.enqueue("write", {"how": how})

    _, _, exc = run_as_a_worker_thread(savepoint_queue)

    assert exc is None
    assert SEEN["savepoint"].opened
    assert job.id in effect_ids()
    assert not Job.objects.filter(id=job.id).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", WRITES)
def test_the_writes_of_a_task_that_raises_are_rolled_back(savepoint_queue, how):
    job = savepoint_queue.enqueue("write_then_fail", {"how": how})

    _, _, exc = run_as_a_worker_thread(savepoint_queue)

    assert isinstance(exc, RuntimeError)
    assert SEEN["savepoint"].opened
    assert effect_ids() == set()
    put_back = Job.objects.get(id=job.id)
    assert put_back.attempts == 1
    assert "failing after its writes" in put_back.last_error


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("task", ["read_with_callproc", "read_with_copy_to"])
def test_other_statements_open_the_savepoint_too(savepoint_queue, task):
    savepoint_queue.enqueue(task)

    _, _, exc = run_as_a_worker_thread(savepoint_queue)

    assert exc is None
    assert SEEN["savepoint"].opened


@pytest.mark.django_db(transaction=True)
def test_the_savepoint_goes_in_the_same_text_as_the_first_statement(savepoint_queue):
    savepoint_queue.enqueue("write", {"how": "django cursor"})

    run_as_a_worker_thread(savepoint_queue)

    assert QUERIES[0].startswith(b"SAVEPOINT dpq_job; INSERT INTO testapp_effect")


@pytest.mark.django_db(transaction=True)
def test_a_task_may_catch_an_error_inside_atomic_and_go_on(savepoint_queue):
    job = savepoint_queue.enqueue("catch_an_integrity_error")

    _, _, exc = run_as_a_worker_thread(savepoint_queue)

    assert exc is None
    assert effect_ids() == {job.id, job.id + 1}


@pytest.mark.django_db(transaction=True)
def test_an_error_on_a_cursor_the_savepoint_cannot_see_rolls_the_claim_back(
    savepoint_queue,
):
    job = savepoint_queue.enqueue("fail_on_a_cursor_of_its_own_class")

    with pytest.raises(exceptions.DpqError, match="outside the job's savepoint"):
        with JobTransaction("default", hold_commit=True):
            (claimed,) = savepoint_queue.claim()
            savepoint_queue.process_job(claimed, solo=False)

    assert not transactions.holds_commit(connection)
    # The claim rolled back: the job is queued as it was, to run again.
    queued = Job.objects.get(id=job.id)
    assert (queued.attempts, queued.last_error) == (0, "")


@pytest.mark.django_db(transaction=True)
def test_in_a_batch_each_task_opens_its_own_savepoint_only_if_it_needs_one(
    savepoint_queue,
):
    ids = savepoint_queue.enqueue_many(
        [
            ("see", {}),
            ("write_then_fail", {"how": "orm"}),
            ("write", {"how": "driver cursor"}),
            ("see", {}),
            ("write_then_fail", {"how": "driver cursor"}),
            ("write", {"how": "orm"}),
        ]
    )

    with transaction.atomic():
        jobs = savepoint_queue.lock_batch(len(ids))
        results = savepoint_queue.process_batch(
            jobs, deadline=float("inf"), should_stop=lambda: False
        )

    assert [exc is None for _, _, exc in results] == [
        True,
        False,
        True,
        True,
        False,
        True,
    ]
    assert effect_ids() == {ids[2], ids[5]}
    assert set(Job.objects.values_list("id", flat=True)) == {ids[1], ids[4]}
    assert connection.connection.cursor_factory is psycopg2.extensions.cursor


@pytest.mark.django_db(transaction=True)
def test_in_a_batch_a_savepoint_left_open_is_released_by_the_next_one_opened(
    savepoint_queue,
):
    ids = savepoint_queue.enqueue_many(
        [
            ("write", {"how": "django cursor"}),
            ("see", {}),
            ("write", {"how": "django cursor"}),
        ]
    )

    with transaction.atomic():
        jobs = savepoint_queue.lock_batch(len(ids))
        savepoint_queue.process_batch(
            jobs, deadline=float("inf"), should_stop=lambda: False
        )

    assert QUERIES[0].startswith(b"SAVEPOINT dpq_job; INSERT")
    assert QUERIES[1].startswith(
        b"RELEASE SAVEPOINT dpq_job; SAVEPOINT dpq_job; INSERT"
    )
    assert effect_ids() == {ids[0], ids[2]}
