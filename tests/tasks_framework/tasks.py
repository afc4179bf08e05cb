"""Django ``@task``s for the backend's tests (tests/tasks_framework)."""

from __future__ import annotations

import datetime
import os
import threading
import time

from django.db import transaction

from tests.tasks_framework.compat import task
from tests.testapp.models import Effect

# Set by a test to hold gated() until it lets it go.
GATE = threading.Event()
ENTERED = threading.Event()


@task
def noop() -> None:
    return None


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def whoami() -> str:
    """The process and thread that ran it, as a worker id names them."""
    return f"{os.getpid()}:{threading.current_thread().name}"


@task(queue_name="emails")
def send_email(to: str) -> str:
    return f"sent to {to}"


@task(priority=10)
def important() -> str:
    return "important"


@task(takes_context=True)
def record(context, note: str = "") -> int:
    """Write an Effect for this job: committed with the job's removal, or not at all."""
    Effect.objects.create(job_id=int(context.task_result.id), note=note)
    return context.attempt


@task(takes_context=True)
def record_then_fail(context) -> None:
    Effect.objects.create(job_id=int(context.task_result.id))
    raise ValueError("refused after writing")


@task(takes_context=True)
def attempts(context) -> dict:
    """Fails on its first attempt; returns what its context says on the second."""
    if context.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {
        "attempt": context.attempt,
        "id": context.task_result.id,
        "worker_ids": len(context.task_result.worker_ids),
        "errors": len(context.task_result.errors),
    }


@task
def fails(message: str = "boom") -> None:
    raise ValueError(message)


@task
def returns_a_date() -> datetime.date:
    return datetime.date(2030, 1, 2)


@task
def returns_int_keys() -> dict:
    return {1: "one"}


@task
def echo(*args, **kwargs) -> dict:
    return {"args": list(args), "kwargs": kwargs}


@task
async def async_record(job_note: str) -> str:
    await Effect.objects.acreate(job_id=-int(time.time_ns() % 10**9), note=job_note)
    return f"async {job_note}"


@task
def gated() -> str:
    ENTERED.set()
    if not GATE.wait(30):
        raise TimeoutError("the test never opened the gate")
    return "through"


@task(takes_context=True)
def slow_record(context) -> int:
    """Write an Effect, then sleep DPQ_TEST_TASK_SLEEP seconds (the kill -9 test's window)."""
    with transaction.atomic():
        Effect.objects.create(job_id=int(context.task_result.id), note="slow")
    time.sleep(float(os.environ.get("DPQ_TEST_TASK_SLEEP", "0")))
    return context.attempt


def not_a_task() -> None:
    pass
