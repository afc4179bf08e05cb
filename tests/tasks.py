"""Tasks the tests run. Each does one thing a test can observe in the database."""

from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
import time
from pathlib import Path

from django.db import IntegrityError, connections, transaction

from dpq import driver as dpq_driver
from dpq.decorators import retry
from tests.testapp.models import Child, Counter, Effect, Run

RAN: list[int] = []


def noop(queue, job):
    return None


def record(queue, job):
    """Commit an Effect row: proof that this job's writes committed (once: job_id is unique)."""
    Effect.objects.create(job_id=job.id, note=str(job.args.get("note", "")))
    RAN.append(job.id)
    return job.id


def record_then_fail(queue, job):
    Effect.objects.create(job_id=job.id, note="should be rolled back")
    raise RuntimeError(f"failing on purpose (job {job.id})")


def fail(queue, job):
    raise ValueError("always fails")


def kill_process(queue, job):
    """Take the worker process down the way the OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)


TASKS = {
    "noop": noop,
    "record": record,
    "record_then_fail": record_then_fail,
    "fail": fail,
    "kill_process": kill_process,
}


class Gate:
    """Lets a test hold a task while it runs: the task sets ``entered`` and waits for ``release``."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


GATE = Gate()


def wait_at_gate(queue, job):
    GATE.entered.set()
    if not GATE.release.wait(30):
        raise TimeoutError("the test never opened the gate")
    return job.id


def record_then_kill(queue, job):
    """Write an Effect, then die before the claim transaction can commit it."""
    Effect.objects.create(job_id=job.id, note="never committed")
    os.kill(os.getpid(), signal.SIGKILL)


def record_starts(queue, job):
    """Commit an Effect whose note is how many start records the job has while it runs."""
    from dpq.models import JobStart

    starts = JobStart.objects.filter(job_id=job.id).values_list("starts", flat=True)
    Effect.objects.create(job_id=job.id, note=str(next(iter(starts), 0)))
    return job.id


# Every task above; TASKS stays as it was for the suites that rely on its names.
ALL_TASKS = {
    **TASKS,
    "wait_at_gate": wait_at_gate,
    "record_then_kill": record_then_kill,
    "record_starts": record_starts,
}


# --- Tasks of the worker suite (tests/worker): they run inside worker subprocesses, so they
# take what they need from the job's args and signal the test through files and rows.


def slow_record(queue, job):
    """Sleep ``args["seconds"]`` (default 0.3), then record: slow enough to run beside others."""
    time.sleep(float(job.args.get("seconds", 0.3)))
    return record(queue, job)


def count_run(queue, job):
    """Sleep ``args["seconds"][$DPQ_TEST_WORKER]`` (0 for any other worker), then write a Run
    row naming that worker: one worker can be made slow, and a second commit shows."""
    worker = os.environ.get("DPQ_TEST_WORKER", "")
    time.sleep(float(job.args.get("seconds", {}).get(worker, 0)))
    Run.objects.create(job_id=job.id, worker=worker)


def wait_for_file(queue, job):
    """Create the file ``args["started"]``, wait for ``args["release"]`` to exist, then record.

    Waits at most ``args["timeout"]`` seconds (default 60), so a test that never releases it
    cannot hang a worker forever.
    """
    with open(job.args["started"], "w"):
        pass
    deadline = time.monotonic() + float(job.args.get("timeout", 60))
    while not os.path.exists(job.args["release"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job.args['release']} never appeared")
        time.sleep(0.02)
    return record(queue, job)


def stall_first_run(queue, job):
    """On the first run, create ``args["marker"]`` and sleep ``args["seconds"]`` without a query.

    Later runs (the marker exists) commit an Effect whose note is the job's start count, as
    record_starts does. The first run holds its claim transaction open and idle, as a task
    waiting on a slow API would.
    """
    if not os.path.exists(job.args["marker"]):
        with open(job.args["marker"], "w"):
            pass
        time.sleep(float(job.args["seconds"]))
        return None
    return record_starts(queue, job)


# --- Tasks whose outcome is decided past the task's own code: at COMMIT, on a cursor of its
# own, by a decorator (tests/worker/test_outcomes.py).


def orphan_child(queue, job):
    """Insert a Child of an Effect that does not exist: refused only at COMMIT (deferred FK)."""
    Child.objects.create(effect_id=-job.id)
    return job.id


def orphan_child_on_driver_cursor(queue, job):
    """Insert an orphan Child through the driver's cursor, which Django does not watch."""
    wrapper = connections[queue.using]
    wrapper.ensure_connection()
    with wrapper.connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Child._meta.db_table} (effect_id) VALUES (%s)", [-job.id]
        )
    return job.id


def record_with_orphan(queue, job):
    """Record, then insert an orphan Child: the whole job must fail, its Effect rolled back."""
    record(queue, job)
    return orphan_child(queue, job)


# A driver cursor kept from an earlier job (record_then_fail_on "kept").
KEPT_CURSORS: dict[int, object] = {}


def _effect_insert(job) -> tuple[str, list]:
    return (
        f"INSERT INTO {Effect._meta.db_table} (job_id, note) VALUES (%s, %s)",
        [job.id, job.args.get("cursor", "")],
    )


def _dict_cursor(raw):
    """A cursor of the driver's own that returns rows as dicts."""
    if dpq_driver.is_psycopg3:
        from psycopg.rows import dict_row

        return raw.cursor(row_factory=dict_row)
    from psycopg2.extras import RealDictCursor

    return raw.cursor(cursor_factory=RealDictCursor)


def record_then_fail_on(queue, job):
    """Write an Effect through the cursor named by ``args["cursor"]``, then raise."""
    kind = job.args["cursor"]
    statement, params = _effect_insert(job)
    wrapper = connections[queue.using]
    if kind == "orm":
        Effect.objects.create(job_id=job.id, note=kind)
    elif kind == "django":
        with wrapper.cursor() as cursor:
            cursor.execute(statement, params)
    else:
        wrapper.ensure_connection()
        driver = wrapper.connection
        if kind == "driver":
            cursor = driver.cursor()
        elif kind == "dict":
            cursor = _dict_cursor(driver)
        elif kind == "named":
            named = driver.cursor(name=f"dpq_test_{job.id}")
            named.execute(f"SELECT id FROM {Effect._meta.db_table}")
            named.fetchall()
            named.close()
            cursor = driver.cursor()
        elif kind == "kept":
            cursor = KEPT_CURSORS.setdefault(id(driver), driver.cursor())
        else:
            raise ValueError(f"unknown cursor kind {kind!r}")
        cursor.execute(statement, params)
    raise RuntimeError(f"failing after a write through the {kind} cursor")


def keep_cursor(queue, job):
    """Make a driver cursor and keep it for a later job on the same connection."""
    wrapper = connections[queue.using]
    wrapper.ensure_connection()
    KEPT_CURSORS.setdefault(id(wrapper.connection), wrapper.connection.cursor())
    return job.id


def serialization_conflict(queue, job):
    """Read Counter rows, write one, then wait for ``args["release"]``: a SERIALIZABLE
    transaction of the test's that wrote meanwhile makes this job's COMMIT fail."""
    list(Counter.objects.filter(name="a"))
    Counter.objects.create(name="b")
    Path(job.args["started"]).write_text("")
    deadline = time.monotonic() + 30
    while not os.path.exists(job.args["release"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job.args['release']} never appeared")
        time.sleep(0.02)
    return job.id


@retry(2, delayfn=lambda retries: datetime.timedelta(0))
def retried_fail(queue, job):
    Effect.objects.create(job_id=job.id * 1000 + job.args.get("retries", 0))
    raise RuntimeError(f"retried failure {job.args.get('retries', 0)}")


OUTCOME_TASKS = {
    "orphan_child": orphan_child,
    "orphan_child_on_driver_cursor": orphan_child_on_driver_cursor,
    "record_with_orphan": record_with_orphan,
    "record_then_fail_on": record_then_fail_on,
    "keep_cursor": keep_cursor,
    "serialization_conflict": serialization_conflict,
    "retried_fail": retried_fail,
}


def raise_system_exit(queue, job):
    """Call sys.exit() in a worker thread: not an Exception, so no task failure either."""
    sys.exit(3)


def freeze_process(queue, job):
    """Stop the whole worker process (SIGSTOP): it no longer answers SIGTERM, only SIGKILL.

    The stop reaches the process a moment later: the task must still be running then.
    """
    os.kill(os.getpid(), signal.SIGSTOP)
    time.sleep(60)


def record_then_fail_on_commit(queue, job):
    """Record, and register an on_commit callback that raises once the job committed."""
    record(queue, job)
    transaction.on_commit(lambda: 1 / 0)
    return job.id


WORKER_TASKS = {
    **TASKS,
    "record_then_fail_on_commit": record_then_fail_on_commit,
    "slow_record": slow_record,
    "count_run": count_run,
    "wait_for_file": wait_for_file,
    "stall_first_run": stall_first_run,
    **OUTCOME_TASKS,
    "raise_system_exit": raise_system_exit,
    "freeze_process": freeze_process,
}


# --- Tasks of the batch suite (tests/worker/test_batch.py): what a task does inside a batch's
# transaction that a batch must keep apart from the other jobs of the batch.


def _write_committed_effects(path: str, job_id: int) -> None:
    """Write to ``path`` how many Effects of the job a separate connection sees (0 or 1)."""
    wrapper = connections["default"]
    raw = wrapper.get_new_connection(wrapper.get_connection_params())
    try:
        with raw.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*) FROM {Effect._meta.db_table} WHERE job_id = %s",
                [job_id],
            )
            count = cursor.fetchone()[0]
    finally:
        raw.close()
    Path(path).write_text(str(count))


def record_on_commit(queue, job):
    """Record, and register an on_commit callback that writes ``args["path"]``.

    The file says how many Effects of the job a separate connection saw when the callback ran:
    1 once the job's transaction has committed. With ``args["fail"]`` the task then raises.
    """
    Effect.objects.create(job_id=job.id, note="on_commit")
    path = job.args["path"]
    transaction.on_commit(lambda: _write_committed_effects(path, job.id))
    if job.args.get("fail"):
        raise RuntimeError(f"failing after on_commit (job {job.id})")
    return job.id


def swallow_db_error(queue, job):
    """Record, then catch the IntegrityError of a second insert without a savepoint."""
    Effect.objects.create(job_id=job.id, note="first")
    try:
        Effect.objects.create(job_id=job.id, note="duplicate")
    except IntegrityError:
        pass
    return job.id


BATCH_TASKS = {
    **WORKER_TASKS,
    "record_on_commit": record_on_commit,
    "swallow_db_error": swallow_db_error,
}


# --- Tasks of the schedule suites (tests/test_scheduler.py, tests/worker/test_schedules.py).


def record_due(queue, job):
    """Commit an Effect whose note is the job's due time (its execute_at) in UTC."""
    due = job.execute_at.astimezone(datetime.UTC).isoformat()
    Effect.objects.create(job_id=job.id, note=due)
    return job.id


SCHEDULE_TASKS = {**TASKS, "record_due": record_due}
