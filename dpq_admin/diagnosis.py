"""Why is this job not running? The answers a queued, delayed or failed job's page gives.

Each answer is one sentence: when the job is due, how many jobs of its queue a worker takes
first, whether a worker serves its queue now (pg_stat_activity, application names
``dpq:<queue>:...``), and whether a connection holds its row (the page's one pgrowlocks
call). Counts stop at the dashboard's count limit, as everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from dpq import sql
from dpq.models import Job, JobState
from dpq_admin import state
from dpq_admin.counts import count_limit
from dpq_admin.numbers import format_count
from dpq_admin.tables import format_duration


@dataclass(frozen=True)
class Reason:
    """One answer: ``key`` names it for pages and tests, ``warning`` when it needs acting on."""

    key: str
    text: str
    warning: bool = False


def _count(statement: str, params: dict, using: str) -> tuple[int, bool]:
    limit = count_limit()
    row = sql.fetch_one(
        using, statement, {**params, "limit": limit + 1}, job_table=state.job_table()
    )
    value = row[0] if row else 0
    return min(value, limit), value > limit


def why_not_running(
    job: Job,
    job_state: str,
    running: state.Running,
    workers: list[state.WorkerConnection],
    using: str = "default",
) -> list[Reason]:
    """The reasons a job that is not running waits; empty for a running job."""
    if job_state == JobState.RUNNING:
        return []
    reasons: list[Reason] = []
    now = timezone.now()
    if job_state == JobState.FAILED:
        reasons.append(
            Reason(
                "failed",
                f"It failed after {job.attempts} attempt{'s' if job.attempts != 1 else ''}: "
                "no worker runs it again until it is requeued.",
                warning=True,
            )
        )
    elif job.execute_at > now:
        wait = format_duration((job.execute_at - now).total_seconds())
        ready, capped = _count(sql.READY_IN_QUEUE, {"queue": job.queue}, using)
        reasons.append(
            Reason("due", f"It is not due yet: it runs in {wait}, at its run time.")
        )
        reasons.append(
            Reason(
                "ahead",
                f"{format_count(ready, capped=capped)} job{'s' if ready != 1 else ''} of "
                f"queue {job.queue!r} {'are' if ready != 1 else 'is'} ready now.",
            )
        )
    else:
        waited = format_duration((now - job.execute_at).total_seconds())
        ahead, capped = _count(
            sql.JOBS_AHEAD,
            {
                "queue": job.queue,
                "job_id": job.pk,
                "priority": job.priority,
                "execute_at": job.execute_at,
            },
            using,
        )
        reasons.append(Reason("due", f"It is due: it has been ready for {waited}."))
        if ahead:
            text = (
                f"{format_count(ahead, capped=capped)} job{'s' if ahead != 1 else ''} "
                f"of queue {job.queue!r} come{'s' if ahead == 1 else ''} before it "
                "(a higher priority, or due earlier)."
            )
        else:
            text = "No job of its queue comes before it: it is the next one claimed."
        reasons.append(Reason("ahead", text))
    serving = [worker for worker in workers if worker.queue == job.queue]
    if serving:
        names = ", ".join(worker.application_name for worker in serving[:3])
        more = f" and {len(serving) - 3} more" if len(serving) > 3 else ""
        reasons.append(
            Reason(
                "workers",
                f"{len(serving)} worker connection{'s' if len(serving) != 1 else ''} "
                f"serve{'s' if len(serving) == 1 else ''} queue {job.queue!r} now: "
                f"{names}{more}.",
            )
        )
    else:
        reasons.append(
            Reason(
                "workers",
                f"No worker serves queue {job.queue!r} now: start one "
                "(manage.py dpq_worker with the queue of that name).",
                warning=True,
            )
        )
    if running.is_known:
        reasons.append(Reason("held", "No connection holds its row."))
    else:
        reasons.append(
            Reason(
                "held",
                "Whether a connection holds its row is unknown without pgrowlocks.",
            )
        )
    return reasons
