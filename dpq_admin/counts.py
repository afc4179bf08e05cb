"""How many jobs each queue and task holds in each state, at a cost that stays small.

Each count of a queue and state stops at ``count_limit()`` (``DPQ_ADMIN_COUNT_LIMIT``,
10,000): it reads at most that many index entries, so the dashboard costs the same at
a million jobs as at ten thousand, and a count that stopped says so ("more than
10,000"). Counts per task need every row (no index has the task), so they are read only
while the whole table holds at most that many jobs; past it the page says why they are
missing.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from dpq import sql
from dpq.models import JobState
from dpq_admin.numbers import format_count
from dpq_admin.state import Running, job_table

DEFAULT_COUNT_LIMIT = 10_000
STATES = (JobState.QUEUED, JobState.RUNNING, JobState.DELAYED, JobState.FAILED)


def count_limit() -> int:
    return int(getattr(settings, "DPQ_ADMIN_COUNT_LIMIT", DEFAULT_COUNT_LIMIT))


@dataclass
class CountRow:
    """Job counts of one group (all jobs, a queue or a task); a state in ``capped``
    stopped counting: its number is a lower bound."""

    name: str
    queued: int = 0
    running: int = 0
    delayed: int = 0
    failed: int = 0
    oldest_queued_at: datetime.datetime | None = None
    capped: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.queued + self.running + self.delayed + self.failed

    def text(self, state: str) -> str:
        """The count as a page prints it: "1,234", or "more than 10,000"."""
        return format_count(getattr(self, state), capped=state in self.capped)

    @property
    def queued_text(self) -> str:
        return self.text(JobState.QUEUED)

    @property
    def running_text(self) -> str:
        return self.text(JobState.RUNNING)

    @property
    def delayed_text(self) -> str:
        return self.text(JobState.DELAYED)

    @property
    def failed_text(self) -> str:
        return self.text(JobState.FAILED)

    def add(
        self,
        queued: int,
        running: int,
        delayed: int,
        failed: int,
        oldest: datetime.datetime | None,
        capped: set[str] = frozenset(),
    ) -> None:
        self.queued += queued
        self.running += running
        self.delayed += delayed
        self.failed += failed
        self.capped |= capped
        if oldest is not None and (
            self.oldest_queued_at is None or oldest < self.oldest_queued_at
        ):
            self.oldest_queued_at = oldest


@dataclass
class Counts:
    total: CountRow = field(default_factory=lambda: CountRow("all queues"))
    by_queue: dict[str, CountRow] = field(default_factory=dict)
    by_task: dict[str, CountRow] = field(default_factory=dict)
    # False when the table holds more than ``limit`` jobs: by_task is then empty.
    tasks_known: bool = True
    limit: int = DEFAULT_COUNT_LIMIT

    @property
    def queue_names(self) -> list[str]:
        return sorted(self.by_queue)

    @property
    def task_names(self) -> list[str]:
        return sorted(self.by_task)

    @property
    def limit_text(self) -> str:
        return format_count(self.limit)

    def oldest_queued_age(
        self, now: datetime.datetime | None = None
    ) -> datetime.timedelta | None:
        oldest = self.total.oldest_queued_at
        if oldest is None:
            return None
        return max((now or timezone.now()) - oldest, datetime.timedelta(0))


def read_counts(
    running: Running, *, per_task: bool = True, using: str = "default"
) -> Counts:
    """Counts per queue, each stopping at the limit; while the table holds at most that
    many jobs, counts per task too (``per_task``), or else only the tasks' names."""
    limit = count_limit()
    running_ids = sorted(running.ids)
    held: dict[tuple[str, str], int] = {}
    for job in running.jobs or ():
        held[job.queue, job.row_state] = held.get((job.queue, job.row_state), 0) + 1
    # Enough rows that the running ones, taken off, still leave more than the limit.
    fetch = limit + len(running_ids) + 1
    rows = sql.fetch_all(
        using,
        sql.COUNT_JOBS_CAPPED,
        {"limit": fetch, "running_ids": running_ids},
        job_table=job_table(),
    )
    counts = Counts(limit=limit)
    small = sum(ready + delayed + failed for _, ready, delayed, failed, _ in rows)
    if small <= limit and per_task:
        return _read_exact_counts(counts, running_ids, using)
    counts.tasks_known = small <= limit
    if counts.tasks_known:
        for (task,) in sql.fetch_all(using, sql.TASK_NAMES, {}, job_table=job_table()):
            counts.by_task[task] = CountRow(task)
    for queue, ready, delayed, failed, oldest in rows:
        numbers = {}
        capped = set()
        for state, raw in (
            (JobState.QUEUED, ready),
            (JobState.DELAYED, delayed),
            (JobState.FAILED, failed),
        ):
            value = raw - held.get((queue, state), 0)
            if raw >= fetch or value > limit:
                value = limit
                capped.add(state)
            numbers[state] = value
        in_queue = sum(n for (name, _), n in held.items() if name == queue)
        values = (numbers[JobState.QUEUED], in_queue, numbers[JobState.DELAYED])
        row = counts.by_queue.setdefault(queue, CountRow(queue))
        row.add(*values, numbers[JobState.FAILED], oldest, capped)
        counts.total.add(*values, numbers[JobState.FAILED], oldest, capped)
    return counts


def _read_exact_counts(counts: Counts, running_ids: list[int], using: str) -> Counts:
    """Every row counted by queue and task, in one pass (the table holds few jobs)."""
    rows = sql.fetch_all(
        using,
        sql.COUNT_JOBS_BY_STATE,
        {"running_ids": running_ids},
        job_table=job_table(),
    )
    for queue, task, queued, running_count, delayed, failed, oldest in rows:
        numbers = (queued, running_count, delayed, failed, oldest)
        counts.total.add(*numbers)
        counts.by_queue.setdefault(queue, CountRow(queue)).add(*numbers)
        counts.by_task.setdefault(task, CountRow(task)).add(*numbers)
    return counts
