"""Tasks the tests run. Each does one thing a test can observe in the database."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from django.db import IntegrityError, connections, transaction

from tests.testapp.models import Effect

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


def raise_system_exit(queue, job):
    """Call sys.exit() in a worker thread: not an Exception, so no task failure either."""
    sys.exit(3)


def freeze_process(queue, job):
    """Stop the whole worker process (SIGSTOP): it no longer answers SIGTERM, only SIGKILL.

    The stop reaches the process a moment later: the task must still be running then.
    """
    os.kill(os.getpid(), signal.SIGSTOP)
    time.sleep(60)


WORKER_TASKS = {
    **TASKS,
    "slow_record": slow_record,
    "wait_for_file": wait_for_file,
    "stall_first_run": stall_first_run,
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
