"""The queue's state for the dashboard: counts, running jobs, workers, job lists.

Every read runs a named statement of ``dpq.sql`` or a ``Job`` queryset; nothing here writes.
A page calls ``pgrowlocks`` at most once (``read_running``) and passes the result along.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from dpq import sql
from dpq.models import Job, JobState
from dpq.querysets import JobQuerySet
from dpq_admin import redact

if TYPE_CHECKING:
    from dpq.models import JSONValue

logger = logging.getLogger("dpq.admin")

# A claim of an at-least-once job is an open transaction: it holds back vacuum on every
# table of the database while it lasts. Runs older than this are flagged on the dashboard.
DEFAULT_LONG_RUNNING_SECONDS = 600

# A text search reads at most this many jobs whose stored args contain the text (newest
# first) and masks each in Python; past it the page says the search was cut short.
SEARCH_CANDIDATE_LIMIT = 1000

ENABLE_PGROWLOCKS_HINT = (
    "Run CREATE EXTENSION pgrowlocks; as a superuser in this database (or run "
    "manage.py migrate dpq_admin as one): the dashboard needs it to tell running jobs "
    "from queued ones."
)


def long_running_seconds() -> float:
    return float(
        getattr(settings, "DPQ_ADMIN_LONG_RUNNING", DEFAULT_LONG_RUNNING_SECONDS)
    )


@dataclass(frozen=True)
class PgrowlocksStatus:
    installed: bool
    available: bool
    may_create: bool


@dataclass(frozen=True)
class RunningJob:
    """A job whose row a connection holds locked, and who holds it."""

    id: int
    queue: str
    task: str
    row_state: str
    modes: list[str]
    pid: int | None
    application_name: str
    client_addr: str | None
    since: datetime.datetime | None
    seconds: float | None

    @property
    def is_long(self) -> bool:
        return self.seconds is not None and self.seconds >= long_running_seconds()


@dataclass
class Running:
    """The result of the page's one pgrowlocks call; ``jobs`` is None when it is unknown."""

    jobs: list[RunningJob] | None
    error: str = ""

    @property
    def is_known(self) -> bool:
        return self.jobs is not None

    @property
    def ids(self) -> set[int]:
        return {job.id for job in self.jobs or ()}

    def by_pid(self) -> dict[int, list[RunningJob]]:
        held: dict[int, list[RunningJob]] = {}
        for job in self.jobs or ():
            if job.pid is not None:
                held.setdefault(job.pid, []).append(job)
        return held


@dataclass(frozen=True)
class WorkerConnection:
    """One database connection of a dpq worker, as pg_stat_activity shows it."""

    pid: int
    application_name: str
    client_addr: str | None
    backend_start: datetime.datetime | None
    xact_start: datetime.datetime | None
    state: str | None
    state_change: datetime.datetime | None
    wait_event: str | None
    running: list[RunningJob]

    def _parts(self) -> list[str]:
        # dpq:<queue>:<host>:<pid>:<thread>; a queue name may itself contain colons.
        parts = self.application_name.split(":")
        if len(parts) < 5 or parts[0] != "dpq":
            return ["", "", "", ""]
        return [":".join(parts[1:-3]), *parts[-3:]]

    @property
    def queue(self) -> str:
        return self._parts()[0]

    @property
    def host(self) -> str:
        return self._parts()[1]

    @property
    def process(self) -> str:
        return self._parts()[2]

    @property
    def thread(self) -> str:
        return self._parts()[3]


def job_table() -> str:
    return Job._meta.db_table


def read_pgrowlocks_status(using: str = "default") -> PgrowlocksStatus:
    row = sql.fetch_one(using, sql.PGROWLOCKS_STATUS, {})
    return PgrowlocksStatus(
        installed=bool(row[0]), available=bool(row[1]), may_create=bool(row[2])
    )


def read_running(using: str = "default") -> Running:
    """Which jobs are locked now, and by which connection: pgrowlocks, called once, and
    only when some other transaction holds a lock on the job table that row locks take."""
    if not read_pgrowlocks_status(using).installed:
        return Running(jobs=None, error=ENABLE_PGROWLOCKS_HINT)
    locks_possible = sql.fetch_one(
        using, sql.ROW_LOCKS_POSSIBLE, {"table_name": job_table()}
    )[0]
    if not locks_possible:
        # No transaction holds the table lock that locking a row takes: none is locked.
        return Running(jobs=[])
    try:
        # A savepoint, so that a refused call (no SELECT right, extension dropped meanwhile)
        # leaves a request's transaction usable under ATOMIC_REQUESTS.
        with transaction.atomic(using=using):
            rows = sql.fetch_all(
                using,
                sql.RUNNING_JOBS,
                {"table_name": job_table()},
                job_table=job_table(),
            )
    except DatabaseError as exc:
        logger.warning("pgrowlocks failed, running jobs are unknown: %s", exc)
        return Running(jobs=None, error=f"pgrowlocks failed: {exc}")
    return Running(
        jobs=[
            RunningJob(
                id=row[0],
                queue=row[1],
                task=row[2],
                row_state=row[3],
                modes=list(row[4] or []),
                pid=row[5],
                application_name=row[6] or "",
                client_addr=row[7],
                since=row[8],
                seconds=row[9],
            )
            for row in rows
        ]
    )


def read_workers(running: Running, using: str = "default") -> list[WorkerConnection]:
    """The dpq worker connections open now, each with the jobs it holds."""
    held = running.by_pid()
    return [
        WorkerConnection(*row, running=held.get(row[0], []))
        for row in sql.fetch_all(using, sql.WORKER_CONNECTIONS, {})
    ]


def jobs_in_state(state: str | None) -> JobQuerySet:
    """The jobs of one state as far as rows tell (queued includes running; see read_running)."""
    if state == JobState.QUEUED:
        return Job.objects.queued()
    if state == JobState.DELAYED:
        return Job.objects.delayed()
    if state == JobState.FAILED:
        return Job.objects.failed()
    return Job.objects.all()


def first_jobs_per_queue(
    jobs: JobQuerySet, queues: list[str], order: tuple[str, ...], limit: int
) -> JobQuerySet:
    """The first ``limit`` of ``jobs`` in ``order``, read one queue at a time.

    No index orders jobs across queues, so ``jobs.order_by(*order)[:limit]`` sorts every
    job of the list; each queue's jobs are in the order of that queue's index (claim, due
    or failed), and a UNION ALL of each queue's first ``limit`` sorts only those.
    """
    if len(queues) < 2:
        return jobs.order_by(*order)
    parts = [jobs.filter(queue=name).order_by(*order)[:limit] for name in queues]
    return parts[0].union(*parts[1:], all=True).order_by(*order)


@dataclass(frozen=True)
class FilteredJobs:
    """A job list's queryset after its filters; ``search_truncated_at`` is the candidate
    limit when a text search had more candidates than it reads, else None."""

    jobs: JobQuerySet
    search_truncated_at: int | None = None


def filter_jobs(
    jobs: JobQuerySet,
    *,
    queue: str = "",
    task: str = "",
    search: str = "",
) -> FilteredJobs:
    """Narrow a job queryset by queue, task and search text (an id, or text the pages show).

    Every value is bound by the ORM; the caller has checked queue and task against the
    names the counts found. A text search runs one query (see ``search_jobs``); the
    queryset returned stays lazy, so sorting and pagination work on it as on any list.
    """
    if queue:
        jobs = jobs.filter(queue=queue)
    if task:
        jobs = jobs.filter(task=task)
    search = search.strip()
    if not search:
        return FilteredJobs(jobs)
    return search_jobs(jobs, search)


def search_jobs(jobs: JobQuerySet, search: str) -> FilteredJobs:
    """Keep the jobs whose id is ``search`` or whose args, masked as pages show them, contain it.

    The database picks candidates whose stored args contain the text, newest first, at most
    SEARCH_CANDIDATE_LIMIT of them (one query); each is masked by ``redact.redact_args`` and
    kept only if the text is still there, so a search never finds a job by a value no page
    shows. The queryset returned selects the kept ids and stays lazy.
    """
    limit = SEARCH_CANDIDATE_LIMIT
    candidates = list(
        jobs.annotate(args_text=Cast("args", TextField()))
        .filter(args_text__icontains=search)
        .order_by("-id")
        .values_list("id", "queue", "args")[: limit + 1]
    )
    needle = search.casefold()
    match = Q(
        id__in=[
            job_id
            for job_id, queue, args in candidates[:limit]
            if needle in visible_args_text(queue, args).casefold()
        ]
    )
    if search.isascii() and search.isdigit() and int(search) < 2**63:
        match |= Q(id=int(search))
    return FilteredJobs(
        jobs.filter(match),
        search_truncated_at=limit if len(candidates) > limit else None,
    )


def visible_args_text(queue: str, args: JSONValue) -> str:
    # Spaced separators and raw non-ASCII, as PostgreSQL writes jsonb as text: a job with
    # nothing to mask is found by the same searches as its stored args.
    return json.dumps(redact.redact_args(queue, args), ensure_ascii=False)


def job_ids_in(ids: Iterable[int]) -> set[int]:
    return set(Job.objects.filter(id__in=list(ids)).values_list("id", flat=True))


def read_failed_names(using: str = "default") -> tuple[list[str], list[str]]:
    """The queues and the tasks that have failed jobs (the choices of requeue-all-failed)."""
    failed = Job.objects.using(using).failed()
    queues = failed.order_by("queue").values_list("queue", flat=True).distinct()
    tasks = failed.order_by("task").values_list("task", flat=True).distinct()
    return list(queues), list(tasks)
