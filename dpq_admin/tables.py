"""The dashboard's tables: jobs, running jobs, workers, counts (django-tables2)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from dpq.models import Job, JobState
from dpq_admin import redact
from dpq_admin.counts import CountRow
from dpq_admin.rows import FastRows
from dpq_admin.state import RunningJob, WorkerConnection

TEMPLATE = "dpq_admin/table.html"
FAST_TEMPLATE = "dpq_admin/fast_table.html"
ARGS_PREVIEW_LENGTH = 80
ERROR_PREVIEW_LENGTH = 100

JobUrl = Callable[[int], str]
ListUrl = Callable[..., str]


def format_duration(seconds: float | None) -> str:
    """Say a duration the way a person reads it: 45s, 12m 5s, 3h 2m, 2d 4h."""
    if seconds is None:
        return "unknown"
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def age_since(moment: datetime.datetime | None) -> str:
    if moment is None:
        return "unknown"
    return format_duration((timezone.now() - moment).total_seconds())


def args_preview(job: Job) -> str:
    text = json.dumps(redact.redact_args(job.queue, job.args), sort_keys=True)
    if len(text) > ARGS_PREVIEW_LENGTH:
        return text[: ARGS_PREVIEW_LENGTH - 1] + "…"
    return text


def job_link(job_url: JobUrl, job_id: int) -> SafeString:
    return format_html('<a href="{}">{}</a>', job_url(job_id), job_id)


class JobTable(FastRows, tables.Table):
    """Jobs of one state (or all), one page at a time; the queryset is never counted."""

    ids = tables.CheckBoxColumn(
        accessor="pk",
        attrs={"th__input": {"class": "dpq-select-all", "aria-label": "Select all"}},
    )
    id = tables.Column(verbose_name="ID")
    state = tables.Column(empty_values=(), orderable=False)
    task = tables.Column()
    queue = tables.Column()
    priority = tables.Column()
    attempts = tables.Column()
    execute_at = tables.DateTimeColumn(verbose_name="Run at")
    created_at = tables.DateTimeColumn(verbose_name="Created")
    failed_at = tables.DateTimeColumn(verbose_name="Failed")
    args = tables.Column(orderable=False, attrs={"td": {"class": "dpq-args"}})
    last_error = tables.Column(
        verbose_name="Last error", orderable=False, attrs={"td": {"class": "dpq-error"}}
    )

    class Meta:
        model = Job
        template_name = FAST_TEMPLATE
        fields = ()
        sequence = (
            "ids",
            "id",
            "state",
            "task",
            "queue",
            "priority",
            "attempts",
            "execute_at",
            "created_at",
            "failed_at",
            "args",
            "last_error",
        )
        empty_text = "No jobs."
        attrs = {"class": "dpq-table"}

    def __init__(
        self,
        *args: Any,
        job_url: JobUrl,
        running_ids: set[int] | None = None,
        **kwargs: Any,
    ) -> None:
        self.job_url = job_url
        self.running_ids = running_ids
        super().__init__(*args, **kwargs)

    def is_running(self, job: Job) -> bool:
        return self.running_ids is not None and job.pk in self.running_ids

    def row_attributes(self, record: Job) -> dict[str, object]:
        return {
            "class": "dpq-running" if self.is_running(record) else "",
            "data-job-id": record.pk,
        }

    def cell_ids(self, record: Job) -> SafeString:
        return format_html('<input type="checkbox" name="ids" value="{}"/>', record.pk)

    def cell_id(self, record: Job) -> SafeString:
        return job_link(self.job_url, record.pk)

    def cell_state(self, record: Job) -> str:
        if self.is_running(record):
            return JobState.RUNNING.value
        return record.state.value

    def cell_args(self, record: Job) -> SafeString:
        return format_html("<code>{}</code>", args_preview(record))

    def cell_last_error(self, record: Job) -> str:
        # Masked before it is cut, so that a cut cannot leave half a secret showing.
        text = redact.redact_text(record.args, record.last_error)
        lines = [line for line in text.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        if len(last) > ERROR_PREVIEW_LENGTH:
            return last[: ERROR_PREVIEW_LENGTH - 1] + "…"
        return last


class RunningJobTable(FastRows, tables.Table):
    """Jobs whose rows a connection holds locked, from the page's one pgrowlocks call."""

    id = tables.Column(verbose_name="ID")
    task = tables.Column()
    queue = tables.Column()
    application_name = tables.Column(verbose_name="Held by")
    pid = tables.Column(verbose_name="PID", orderable=False)
    since = tables.DateTimeColumn(verbose_name="Since", orderable=False)
    seconds = tables.Column(verbose_name="Running for", orderable=False)
    modes = tables.Column(verbose_name="Lock", orderable=False)

    class Meta:
        template_name = FAST_TEMPLATE
        empty_text = "No job is running."
        attrs = {"class": "dpq-table"}

    def __init__(self, *args: Any, job_url: JobUrl, **kwargs: Any) -> None:
        self.job_url = job_url
        super().__init__(*args, **kwargs)

    def row_attributes(self, record: RunningJob) -> dict[str, object]:
        return {"class": "dpq-long" if record.is_long else ""}

    def cell_id(self, record: RunningJob) -> SafeString:
        return job_link(self.job_url, record.id)

    def cell_application_name(self, record: RunningJob) -> str:
        return record.application_name or "(not a dpq worker)"

    def cell_seconds(self, record: RunningJob) -> SafeString:
        if record.is_long:
            return format_html(
                '<span class="dpq-warning" title="{}">{} (long)</span>',
                "An open transaction holds back vacuum while it lasts",
                format_duration(record.seconds),
            )
        return format_html("{}", format_duration(record.seconds))

    def cell_modes(self, record: RunningJob) -> str:
        return ", ".join(record.modes)


class WorkerTable(FastRows, tables.Table):
    """Worker connections from pg_stat_activity, with the jobs each one holds."""

    application_name = tables.Column(verbose_name="Application name")
    queue = tables.Column(empty_values=(), orderable=False)
    host = tables.Column(empty_values=(), orderable=False)
    process = tables.Column(
        verbose_name="PID (worker)", empty_values=(), orderable=False
    )
    thread = tables.Column(empty_values=(), orderable=False)
    client_addr = tables.Column(verbose_name="Client", orderable=False)
    backend_start = tables.DateTimeColumn(
        verbose_name="Connected since", orderable=False
    )
    state = tables.Column(orderable=False)
    running = tables.Column(verbose_name="Running", empty_values=(), orderable=False)

    class Meta:
        template_name = FAST_TEMPLATE
        empty_text = "No worker is connected."
        attrs = {"class": "dpq-table"}

    def __init__(
        self, *args: Any, job_url: JobUrl, running_known: bool, **kwargs: Any
    ) -> None:
        self.job_url = job_url
        self.running_known = running_known
        super().__init__(*args, **kwargs)

    def cell_running(self, record: WorkerConnection) -> SafeString | str:
        if not self.running_known:
            return "unknown"
        if not record.running:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> {} ({})',
            (
                (self.job_url(job.id), job.id, job.task, format_duration(job.seconds))
                for job in record.running
            ),
        )


class CountTable(FastRows, tables.Table):
    """Job counts per state of each queue or each task, each linking to its job lists."""

    name = tables.Column()
    queued = tables.Column()
    running = tables.Column()
    delayed = tables.Column()
    failed = tables.Column()
    oldest_queued_at = tables.Column(verbose_name="Oldest queued", orderable=False)

    class Meta:
        template_name = FAST_TEMPLATE
        empty_text = "No jobs."
        attrs = {"class": "dpq-table dpq-counts"}

    def __init__(
        self,
        *args: Any,
        filter_name: str,
        list_url: ListUrl,
        running_known: bool,
        **kwargs: Any,
    ) -> None:
        self.filter_name = filter_name
        self.list_url = list_url
        self.running_known = running_known
        super().__init__(*args, **kwargs)
        self.columns["name"].column.verbose_name = filter_name.capitalize()

    def _link(self, record: CountRow, state: str, text: str) -> SafeString:
        url = self.list_url(state, **{self.filter_name: record.name})
        return format_html('<a href="{}">{}</a>', url, text)

    def _count(self, record: CountRow, state: str) -> SafeString:
        return self._link(record, state, record.text(state))

    def cell_name(self, record: CountRow) -> SafeString:
        return self._link(record, "all", record.name)

    def cell_queued(self, record: CountRow) -> SafeString:
        return self._count(record, JobState.QUEUED)

    def cell_running(self, record: CountRow) -> SafeString | str:
        if not self.running_known:
            return "unknown"
        return self._count(record, JobState.RUNNING)

    def cell_delayed(self, record: CountRow) -> SafeString:
        return self._count(record, JobState.DELAYED)

    def cell_failed(self, record: CountRow) -> SafeString:
        return self._count(record, JobState.FAILED)

    def cell_oldest_queued_at(self, record: CountRow) -> str:
        return age_since(record.oldest_queued_at) if record.oldest_queued_at else "—"
