"""The dashboard's pages: overview, job lists per state, a job, confirmation pages.

Each view is called by JobAdmin through ``admin_site.admin_view`` (login, staff, CSRF), with
the HTTP methods it allows (pages GET, actions POST), and checks the model permission
itself: ``admin_view`` only checks that the user is staff.
"""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django_tables2 import LazyPaginator, RequestConfig

from dpq.models import Job, JobStart, JobState
from dpq_admin import forms, redact, state, tables

if TYPE_CHECKING:
    from dpq_admin.admin import JobAdmin

PER_PAGE = 50
# PostgreSQL's bigint: a larger id would fail in the database, not find nothing.
MAX_JOB_ID = 2**63 - 1
LIST_STATES = ("queued", "running", "delayed", "failed", "all")
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


def admin_url(model_admin: JobAdmin, view: str, *args: object) -> str:
    return reverse(
        f"{model_admin.admin_site.name}:dpq_job_{view}",
        args=args,
        current_app=model_admin.admin_site.name,
    )


def page_context(
    model_admin: JobAdmin, request: HttpRequest, title: str
) -> dict[str, object]:
    """What every dashboard page needs: the admin's context, permissions and links."""
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": Job._meta,
        "app_label": Job._meta.app_label,
        "can_requeue": model_admin.has_requeue_permission(request),
        "can_delete": model_admin.has_delete_permission(request),
        "dashboard_url": admin_url(model_admin, "changelist"),
        "list_urls": [(name, admin_url(model_admin, name)) for name in LIST_STATES],
        "state_urls": {name: admin_url(model_admin, name) for name in LIST_STATES},
        "enable_hint": state.ENABLE_PGROWLOCKS_HINT,
    }


def require_view_permission(model_admin: JobAdmin, request: HttpRequest) -> None:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def job_url_for(model_admin: JobAdmin) -> tables.JobUrl:
    base = admin_url(model_admin, "job", 0)[: -len("0/")]
    return lambda job_id: f"{base}{job_id}/"


def list_url_for(model_admin: JobAdmin) -> tables.ListUrl:
    def list_url(list_state: str, **filters: str) -> str:
        query = urlencode({key: value for key, value in filters.items() if value})
        url = admin_url(model_admin, list_state)
        return f"{url}?{query}" if query else url

    return list_url


def safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def dashboard(model_admin: JobAdmin, request: HttpRequest) -> HttpResponse:
    """Counts per state, queue and task; the oldest queued job; workers; running jobs."""
    require_view_permission(model_admin, request)
    running = state.read_running()
    counts = state.read_counts(running)
    workers = state.read_workers(running)
    job_url = job_url_for(model_admin)
    list_url = list_url_for(model_admin)
    config = RequestConfig(request, paginate={"per_page": PER_PAGE})
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
        config.configure(table)
    context = {
        **page_context(model_admin, request, "Job queue"),
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
    }
    return TemplateResponse(request, "dpq_admin/dashboard.html", context)


def job_list(
    model_admin: JobAdmin, request: HttpRequest, list_state: str
) -> HttpResponse:
    """One state's jobs (or all), filtered, searched, sorted and paginated without COUNT(*)."""
    require_view_permission(model_admin, request)
    running = state.read_running()
    counts = state.read_counts(running)
    form = forms.JobFilterForm(
        request.GET or None, queues=counts.queue_names, tasks=counts.task_names
    )
    queue, task, search = form.value("queue"), form.value("task"), form.value("q")
    job_url = job_url_for(model_admin)
    search_truncated_at = None
    if list_state == JobState.RUNNING:
        table = tables.RunningJobTable(
            _filter_running(running, queue=queue, task=task, search=search),
            job_url=job_url,
            order_by=("id",),
        )
        RequestConfig(request, paginate={"per_page": PER_PAGE}).configure(table)
    else:
        filtered = state.filter_jobs(
            state.jobs_in_state(list_state), queue=queue, task=task, search=search
        )
        search_truncated_at = filtered.search_truncated_at
        table = tables.JobTable(
            filtered.jobs,
            job_url=job_url,
            running_ids=running.ids if running.is_known else None,
            order_by=DEFAULT_ORDER[list_state],
            exclude=HIDDEN_COLUMNS[list_state],
        )
        RequestConfig(
            request, paginate={"paginator_class": LazyPaginator, "per_page": PER_PAGE}
        ).configure(table)
    names = model_admin.get_job_actions(request)
    actions = [
        (name, label)
        for name, label in model_admin.get_action_choices(request, default_choices=[])
        if name in names
    ]
    failed_names = (
        [row.name for row in counts.by_queue.values() if row.failed],
        [row.name for row in counts.by_task.values() if row.failed],
    )
    context = {
        **page_context(model_admin, request, f"{list_state.capitalize()} jobs"),
        "list_state": list_state,
        "running": running,
        "counts": counts,
        "table": table,
        "filter_form": form,
        "search_truncated_at": f"{search_truncated_at:,}"
        if search_truncated_at
        else "",
        "actions": actions if list_state != JobState.RUNNING else [],
        "action_url": admin_url(model_admin, "action"),
        "requeue_failed_form": forms.RequeueFailedForm(
            initial={"queue": queue, "task": task},
            queues=failed_names[0],
            tasks=failed_names[1],
        ),
        "requeue_failed_url": admin_url(model_admin, "requeue_failed"),
    }
    return TemplateResponse(request, "dpq_admin/job_list.html", context)


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


def job_detail(
    model_admin: JobAdmin, request: HttpRequest, job_id: int
) -> HttpResponse:
    """Every field of one job, args and traceback masked, and its actions."""
    require_view_permission(model_admin, request)
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
    context = {
        **page_context(model_admin, request, f"Job {job.pk}: {job.task}"),
        "job": job,
        "state": current_state,
        "running": running,
        "holder": holder,
        "start": start,
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
        "action_url": admin_url(model_admin, "action"),
        "history_url": admin_url(model_admin, "history", job.pk),
        "holder_running_for": tables.format_duration(holder.seconds) if holder else "",
        "after_delete_url": admin_url(
            model_admin, "failed" if job.state == JobState.FAILED else "all"
        ),
        "list_url": list_url_for(model_admin),
    }
    return TemplateResponse(request, "dpq_admin/job.html", context)


def parse_job_id(text: str) -> int | None:
    """The job id a URL names, or None when ``text`` is not one ("abc", "²", past bigint)."""
    if text.isascii() and text.isdigit() and int(text) <= MAX_JOB_ID:
        return int(text)
    return None


def posted_ids(request: HttpRequest) -> list[int]:
    """The job ids a form posted, sorted; ValueError when one is not a number or past bigint."""
    ids = sorted({int(value) for value in request.POST.getlist("ids")})
    if any(abs(job_id) > MAX_JOB_ID for job_id in ids):
        raise ValueError(f"job ids must be at most {MAX_JOB_ID}")
    return ids


def run_action(model_admin: JobAdmin, request: HttpRequest) -> HttpResponse:
    """Run a declared admin action on the posted job ids (POST only, CSRF-checked)."""
    require_view_permission(model_admin, request)
    fallback = admin_url(model_admin, "changelist")
    name = request.POST.get("action", "")
    if name not in model_admin.get_job_actions(request):
        if name in (model_admin.actions or ()):
            raise PermissionDenied
        messages.error(request, "Choose an action to run on the selected jobs.")
        return HttpResponseRedirect(safe_next(request, fallback))
    try:
        ids = posted_ids(request)
    except ValueError:
        messages.error(
            request,
            "Job ids must be numbers (whole, below 2**63); nothing was changed.",
        )
        return HttpResponseRedirect(safe_next(request, fallback))
    if not ids:
        messages.warning(
            request, "Select at least one job for the action; nothing was changed."
        )
        return HttpResponseRedirect(safe_next(request, fallback))
    if len(ids) > model_admin.max_selected:
        messages.error(
            request,
            f"{len(ids)} jobs were selected; an action takes at most "
            f"{model_admin.max_selected}. Nothing was changed.",
        )
        return HttpResponseRedirect(safe_next(request, fallback))
    action = getattr(model_admin, name)
    response = action(request, Job.objects.filter(pk__in=ids))
    return response or HttpResponseRedirect(safe_next(request, fallback))


def requeue_failed(model_admin: JobAdmin, request: HttpRequest) -> HttpResponse:
    """Requeue every failed job of a queue and/or a task (POST only)."""
    if not model_admin.has_requeue_permission(request):
        raise PermissionDenied
    queues, tasks = state.read_failed_names()
    form = forms.RequeueFailedForm(request.POST, queues=queues, tasks=tasks)
    fallback = admin_url(model_admin, "failed")
    if not form.is_valid():
        messages.error(
            request,
            "No failed jobs of that queue or task; nothing was changed.",
        )
        return HttpResponseRedirect(safe_next(request, fallback))
    model_admin.requeue_all_failed(
        request,
        queue=form.cleaned_data["queue"] or None,
        task=form.cleaned_data["task"] or None,
        reset_attempts=form.cleaned_data["reset_attempts"],
    )
    return HttpResponseRedirect(safe_next(request, fallback))
