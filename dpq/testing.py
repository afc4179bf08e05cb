"""Helpers for your own tests: run the jobs your code enqueued, and check what it enqueued.

Both work inside the test's transaction (Django's ``TestCase``, pytest-django's ``db``), where
the job table starts empty, so what they see is what the test enqueued. Jobs run on the test's
connection, in savepoints of its transaction: no other connection is opened, nothing is
committed, and nothing outlives the test. Each call makes its own queries when you call it, so
an ``assertNumQueries`` around the code under test counts only that code's queries.
With pytest, the ``dpq_run_jobs`` and ``dpq_assert_enqueued`` fixtures (dpq.pytest_plugin)
give the same functions, database access included.
"""

from __future__ import annotations

import datetime
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from unittest import mock

from django.contrib.postgres.functions import TransactionNow
from django.db import DEFAULT_DB_ALIAS

from dpq import runner
from dpq.models import BaseJob, Job

if TYPE_CHECKING:
    from dpq.queue import Queue

ANY = mock.ANY
# Ran this many jobs and more are ready: a task that enqueues itself, most likely.
DEFAULT_LIMIT = 1000
# The code under test and the test each take their own now(): execute_at matches to a second.
EXECUTE_AT_TOLERANCE = datetime.timedelta(seconds=1)


@dataclass(frozen=True)
class JobOutcome:
    """What one run of a job did: its task's return value, or the exception it raised."""

    job: BaseJob
    retval: Any
    exc: BaseException | None

    @property
    def succeeded(self) -> bool:
        return self.exc is None

    @property
    def traceback(self) -> str | None:
        """The exception's traceback as text (as the job's ``last_error`` has it), or None."""
        if self.exc is None:
            return None
        return "".join(traceback.format_exception(self.exc))


def run_jobs(
    *queues: Queue, include_delayed: bool = False, limit: int = DEFAULT_LIMIT
) -> list[JobOutcome]:
    """Run the ready jobs of ``queues``, and those they enqueue, until none is ready.

    Jobs run one at a time in the current transaction, as the worker runs them (a failure is
    put back with its backoff, or kept as failed), each at most once per call; an
    at-most-once queue's jobs run in it too. ``include_delayed`` runs the jobs delayed at the
    time of the call as if they were due (a test's transaction never reaches a future time).
    Returns the outcomes in the order the jobs ran.
    """
    if not queues:
        raise TypeError("run_jobs() needs at least one queue: run_jobs(queue)")
    if include_delayed:
        for queue in queues:
            _bring_delayed_forward(queue)
    outcomes: list[JobOutcome] = []
    ran: set[int] = set()
    while True:
        found = False
        for queue in queues:
            result = _run_one(queue, ran)
            if result is None:
                continue
            found = True
            job, retval, exc = result
            ran.add(job.id)
            outcomes.append(JobOutcome(job, retval, exc))
            if len(outcomes) >= limit and _has_ready(queues, ran):
                raise AssertionError(
                    f"run_jobs() ran {limit} jobs and more are ready: does a task enqueue "
                    f"itself? Pass limit= to run more"
                )
        if not found:
            return outcomes


def _run_one(queue: Queue, ran: set[int]) -> tuple[BaseJob, Any, Any] | None:
    if not queue.at_most_once:
        return queue.run_once(exclude_ids=ran)
    # Its run_once() refuses a transaction (the claim must commit first); a test's
    # transaction never commits, so the claim and the run share it.
    jobs = queue.claim(exclude_ids=ran)
    return runner.run_committed_claim(queue, jobs[0]).result if jobs else None


def _bring_delayed_forward(queue: Queue) -> None:
    # TransactionNow is the claim's now(): the start of the test's transaction.
    _job_rows(queue).filter(
        queue=queue.name, failed_at__isnull=True, execute_at__gt=TransactionNow()
    ).update(execute_at=TransactionNow())


def _has_ready(queues: Iterable[Queue], ran: set[int]) -> bool:
    return any(
        _job_rows(queue)
        .filter(
            queue=queue.name, failed_at__isnull=True, execute_at__lte=TransactionNow()
        )
        .exclude(id__in=ran)
        .exists()
        for queue in queues
    )


def _job_rows(queue: Queue | None) -> Any:
    if queue is None:
        return Job.objects.using(DEFAULT_DB_ALIAS)
    return queue.job_model.objects.using(queue.using)


def enqueued_jobs(queue: Queue | str | None = None) -> list[BaseJob]:
    """The jobs waiting to run (queued or delayed, not failed), oldest first.

    ``queue`` limits them to one queue: a Queue (its table and database) or a queue name.
    """
    rows = _job_rows(queue if not isinstance(queue, str) else None)
    rows = rows.filter(failed_at__isnull=True).order_by("id")
    if queue is not None:
        rows = rows.filter(queue=queue if isinstance(queue, str) else queue.name)
    return list(rows)


def assert_enqueued(
    task: str | None = None,
    *,
    args: Any = ANY,
    queue: Queue | str | None = None,
    priority: Any = ANY,
    execute_at: Any = ANY,
    count: int | None = None,
) -> list[BaseJob]:
    """Assert that a job waits with these fields; return the jobs that match.

    Fields left out match anything; ``args`` is compared with ``==`` (use ``ANY`` inside it
    for a value you do not care about), ``execute_at`` to within a second. ``count`` asks for
    exactly that many matches instead of at least one. The failure lists what is enqueued.
    """
    jobs = enqueued_jobs(queue)
    wanted = _Wanted(task, args, priority, execute_at)
    matching = [job for job in jobs if wanted.matches(job)]
    if (count is None and matching) or count == len(matching):
        return matching
    expected = "a job" if count is None else f"{count} job(s)"
    raise AssertionError(
        f"expected {expected} {wanted.describe(queue)} to be enqueued, found "
        f"{len(matching)}; {_listing(jobs)}"
    )


def assert_not_enqueued(
    task: str | None = None,
    *,
    args: Any = ANY,
    queue: Queue | str | None = None,
    priority: Any = ANY,
    execute_at: Any = ANY,
) -> None:
    """Assert that no job waits with these fields (matched as assert_enqueued() does)."""
    wanted = _Wanted(task, args, priority, execute_at)
    matching = [job for job in enqueued_jobs(queue) if wanted.matches(job)]
    if matching:
        raise AssertionError(
            f"expected no job {wanted.describe(queue)} to be enqueued; "
            f"{_listing(matching)}"
        )


@dataclass(frozen=True)
class _Wanted:
    task: str | None
    args: Any
    priority: Any
    execute_at: Any

    def matches(self, job: BaseJob) -> bool:
        if self.task is not None and job.task != self.task:
            return False
        if self.args != job.args or self.priority != job.priority:
            return False
        if isinstance(self.execute_at, datetime.datetime):
            return abs(job.execute_at - self.execute_at) <= EXECUTE_AT_TOLERANCE
        return self.execute_at == job.execute_at

    def describe(self, queue: Queue | str | None) -> str:
        fields = [f"task={self.task!r}"] if self.task is not None else []
        fields += [
            f"{name}={value!r}"
            for name, value in (
                ("args", self.args),
                ("priority", self.priority),
                ("execute_at", self.execute_at),
            )
            if value is not ANY
        ]
        if queue is not None:
            fields.append(f"queue={queue if isinstance(queue, str) else queue.name!r}")
        return f"with {', '.join(fields)}" if fields else "at all"


def _listing(jobs: list[BaseJob]) -> str:
    if not jobs:
        return "no job is enqueued"
    lines = [f"{len(jobs)} job(s) are:"] + [
        f"  #{job.id} {job.task!r} on queue {job.queue!r}, args {job.args!r}, "
        f"priority {job.priority}, execute_at {job.execute_at.isoformat()}"
        for job in jobs
    ]
    return "\n".join(lines)
