"""Tasks the tests run. Each does one thing a test can observe in the database."""

from __future__ import annotations

import os
import signal

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
