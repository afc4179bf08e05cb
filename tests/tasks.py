"""Tasks the tests run. Each does one thing a test can observe in the database."""

from __future__ import annotations

import os
import signal
import threading

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
