"""The dashboard's read-only pages: the overview, the job list of each state, a job.

``JobAdminViews`` is a mixin of ``JobAdmin``, which routes its URLs to these views through
``admin_site.admin_view`` (login, staff, CSRF) with the HTTP methods each allows. Each view
checks the model permission itself.
"""

from __future__ import annotations

import datetime
import json

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse

from dpq.models import Job, JobStart, JobState
from dpq_admin import chart, diagnosis, forms, links, params, redact, state, tables
from dpq_admin import counts as job_counts
from dpq_admin.pauses import pause_context

PER_PAGE = 50
# Columns a list of each state leaves out (the rest say nothing about that state).
HIDDEN_COLUMNS = {
    JobState.QUEUED: ("failed_at", "last_error", "created_at"),
    JobState.DELAYED: ("failed_at", "last_error", "created_at"),
    JobState.FAILED: ("execute_at", "created_at"),
    "all": ("last_error",),
}
# The order a list starts in: what runs next, what is due next, what failed last, newest.
DEFAULT_ORDER = {
    JobState.QUEUED: ("-priority", "execute_at", "id"),
    JobState.DELAYED: ("execute_at", "id"),
    JobState.FAILED: ("-failed_at", "-id"),
    "all": ("-id",),
}
# The lists whose usual order an index gives within each queue, not across queues.
PER_QUEUE_ORDER = (JobState.QUEUED, JobState.DELAYED, JobState.FAILED)


class JobAdminViews:
    """The dashboard in place of Django's change list, the job lists and the job page."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        """Counts per state, queue and task; the oldest queued job; workers; running jobs."""
        if request.method not in links.SAFE_METHODS:
            return HttpResponseNotAllowed(links.SAFE_METHODS)
        links.require_view_permission(self, request)
        running = state.read_running()
        counts = job_counts.read_counts(running)
        workers = state.read_workers(running)
        job_url = links.job_url_for(self)
        list_url = links.list_url_for(self)
        notices = params.Notices()
        queue_table = tables.CountTable(
            list(counts.by_queue.values()),
            filter_name="queue",
            list_url=list_url,
            running_known=running.is_known,
            prefix="queues-",
        )
        task_table = tables.CountTable(
            list(counts.by_task.values()),
            filter_name="task",
            list_url=list_url,
            running_known=running.is_known,
            prefix="tasks-",
        )
        worker_table = tables.WorkerTable(
            workers, job_url=job_url, running_known=running.is_known, prefix="workers-"
        )
        running_table = tables.RunningJobTable(
            running.jobs or [], job_url=job_url, prefix="running-"
        )
        for table in (queue_table, task_table, worker_table, running_table):
            params.configure(request, table, notices, per_page=PER_PAGE)
        throughput = chart.read_throughput()
        context = {
            **links.page_context(self, request, "Job queue"),
            "bad_params": notices,
            "throughput": throughput,
            "throughput_svg": chart.render_svg(throughput),
            "running": running,
            "counts": counts,
            "oldest_queued_age_text": _duration_or_blank(counts.oldest_queued_age()),
            "long_running": [job for job in running.jobs or () if job.is_long],
            "long_running_text": tables.format_duration(state.long_running_seconds()),
            "queue_table": queue_table,
            "task_table": task_table,
            "worker_table": worker_table,
            "running_table": running_table,
            "list_url": list_url,
            **pause_context(self, request, counts.queue_names),
        }
        return TemplateResponse(request, "dpq_admin/dashboard.html", context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        """Django's change page: jobs change only through actions, so show the job page."""
        job_id = links.parse_job_id(object_id)
        if job_id is None:
            return HttpResponseRedirect(links.admin_url(self, "changelist"))
        return HttpResponseRedirect(links.admin_url(self, "job", job_id))

    def job_list_view(self, request: HttpRequest, list_state: str) -> HttpResponse:
        """One state's jobs (or all), filtered, searched, sorted and paginated without COUNT(*)."""
        links.require_view_permission(self, request)
        running = state.read_running()
        counts = job_counts.read_counts(running, per_task=False)
        form = forms.JobFilterForm(
            request.GET or None,
            queues=counts.queue_names,
            tasks=counts.task_names if counts.tasks_known else None,
        )
        queue, task, search = form.value("queue"), form.value("task"), form.value("q")
        job_url = links.job_url_for(self)
        search_truncated_at = None
        notices = params.Notices()
        if list_state == JobState.RUNNING:
            table = tables.RunningJobTable(
                _filter_running(running, queue=queue, task=task, search=search),
                job_url=job_url,
                order_by=("id",),
            )
            params.configure(request, table, notices, per_page=PER_PAGE)
        else:
            filtered = state.filter_jobs(
                state.jobs_in_state(list_state), queue=queue, task=task, search=search
            )
            search_truncated_at = filtered.search_truncated_at
            jobs = filtered.jobs
            sort = request.GET.get("sort")
            if list_state in PER_QUEUE_ORDER and not queue and not search and not sort:
                jobs = state.first_jobs_per_queue(
                    jobs,
                    counts.queue_names,
                    DEFAULT_ORDER[list_state],
                    params.rows_needed(request, per_page=PER_PAGE),
                )
            table = tables.JobTable(
                jobs,
                job_url=job_url,
                running_ids=running.ids if running.is_known else None,
                order_by=DEFAULT_ORDER[list_state],
                exclude=HIDDEN_COLUMNS[list_state],
            )
            params.configure(
                request,
                table,
                notices,
                per_page=PER_PAGE,
                paginator_class=params.UncountedPaginator,
            )
        names = self.get_job_actions(request)
        actions = [
            (name, label)
            for name, label in self.get_action_choices(request, default_choices=[])
            if name in names
        ]
        failed_names = _failed_names(list_state, counts, task)
        context = {
            **links.page_context(self, request, f"{list_state.capitalize()} jobs"),
            "bad_params": notices,
            "list_state": list_state,
            "running": running,
            "counts": counts,
            "table": table,
            "filter_form": form,
            "search_truncated_at": f"{search_truncated_at:,}"
            if search_truncated_at
            else "",
            "actions": actions if list_state != JobState.RUNNING else [],
            "action_url": links.admin_url(self, "action"),
            "requeue_failed_form": forms.RequeueFailedForm(
                initial={"queue": queue, "task": task},
                queues=failed_names[0],
                tasks=failed_names[1],
            ),
            "requeue_failed_url": links.admin_url(self, "requeue_failed"),
        }
        return TemplateResponse(request, "dpq_admin/job_list.html", context)

    def job_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        """Every field of one job, args and traceback masked, and its actions."""
        links.require_view_permission(self, request)
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            raise Http404(
                f"Job {job_id} does not exist: it ran and succeeded, or it was deleted."
            )
        running = state.read_running()
        holder = next((held for held in running.jobs or () if held.id == job.pk), None)
        is_running = holder is not None
        current_state = JobState.RUNNING if is_running else job.state
        start = JobStart.objects.filter(job_id=job.pk).first()
        reasons = diagnosis.why_not_running(
            job, current_state, running, state.read_workers(running)
        )
        context = {
            **links.page_context(self, request, f"Job {job.pk}: {job.task}"),
            "job": job,
            "state": current_state,
            "running": running,
            "holder": holder,
            "start": start,
            "reasons": reasons,
            "args_json": json.dumps(
                redact.redact_args(job.queue, job.args),
                indent=2,
                sort_keys=True,
                ensure_ascii=False,
            ),
            "last_error": redact.redact_text(job.args, job.last_error),
            "may_requeue": not is_running
            and current_state in (JobState.FAILED, JobState.DELAYED),
            "may_delete": not is_running,
            "action_url": links.admin_url(self, "action"),
            "history_url": links.admin_url(self, "history", job.pk),
            "holder_running_for": tables.format_duration(holder.seconds)
            if holder
            else "",
            "after_delete_url": links.admin_url(
                self, "failed" if job.state == JobState.FAILED else "all"
            ),
            "list_url": links.list_url_for(self),
        }
        return TemplateResponse(request, "dpq_admin/job.html", context)


def _failed_names(
    list_state: str, counts: job_counts.Counts, task: str
) -> tuple[list[str], list[str]]:
    """The queues and tasks "requeue all failed" offers: on a big table, the task the list
    is filtered by (naming every failed task would read every failed job)."""
    queues = [row.name for row in counts.by_queue.values() if row.failed]
    if list_state != JobState.FAILED or not counts.total.failed:
        return queues, []
    if counts.tasks_known:
        return queues, state.read_failed_names()[1]
    return queues, [task] if task else []


def _duration_or_blank(age: datetime.timedelta | None) -> str:
    return "" if age is None else tables.format_duration(age.total_seconds())


def _filter_running(
    running: state.Running, *, queue: str, task: str, search: str
) -> list[state.RunningJob]:
    search = search.strip()
    return [
        job
        for job in running.jobs or ()
        if (not queue or job.queue == queue)
        and (not task or job.task == task)
        and (not search or str(job.id) == search)
    ]
