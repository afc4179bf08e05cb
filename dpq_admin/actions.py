"""The dashboard's changes: requeue and delete, their confirmation, Django's delete page.

``JobAdminActions`` is a mixin of ``JobAdmin``. Every change goes through ``Job.objects``
(requeue, requeue_failed, delete_jobs), which skip running jobs instead of waiting for their
row locks, is written to the admin's history, and is told to the user with its counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.utils import timezone

from dpq.models import Job, JobState
from dpq.querysets import DeleteResult, RequeueResult
from dpq_admin import forms, links, state

if TYPE_CHECKING:
    from django.db.models import QuerySet

RUNNING_SKIP_REASON = "a worker holds its row lock until the run ends"


def running_refusal(job_id: int) -> str:
    return (
        f"Job {job_id} is running (a worker holds its row lock); it cannot be "
        "deleted until its run ends."
    )


def missing_job(job_id: int) -> str:
    return f"Job {job_id} does not exist: it ran and succeeded, or it was deleted."


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def describe_requeue(result: RequeueResult, *, reset_attempts: bool) -> str:
    parts = [
        f"Requeued {plural(result.requeued, 'job')}"
        + (" with attempts reset" if reset_attempts and result.requeued else "")
    ]
    if result.skipped_running:
        parts.append(
            f"skipped {plural(result.skipped_running, 'running job')} "
            f"({RUNNING_SKIP_REASON})"
        )
    if result.skipped_queued:
        parts.append(f"{plural(result.skipped_queued, 'job')} already queued")
    if result.missing:
        parts.append(f"{plural(result.missing, 'job')} no longer existed")
    return "; ".join(parts) + "."


def describe_delete(result: DeleteResult) -> str:
    parts = [f"Deleted {plural(result.deleted, 'job')}"]
    if result.skipped_running:
        parts.append(
            f"skipped {plural(result.skipped_running, 'running job')} "
            f"({RUNNING_SKIP_REASON})"
        )
    if result.missing:
        parts.append(f"{plural(result.missing, 'job')} no longer existed")
    return "; ".join(parts) + "."


def message_level(done: int, skipped: int) -> int:
    if skipped:
        return messages.WARNING
    return messages.SUCCESS if done else messages.INFO


class JobAdminActions:
    """The admin actions on selected jobs, the pages that run them, and deletion."""

    def get_job_actions(self, request: HttpRequest) -> list[str]:
        """The names of this admin's own actions that the user may run, in declared order.

        Site-wide actions (Django's delete_selected, any added with admin.site.add_action) are
        left out: they change jobs through the ORM, which waits on a running job's row lock.
        """
        allowed = self.get_actions(request)
        return [name for name in self.actions or () if name in allowed]

    def action_view(self, request: HttpRequest) -> HttpResponse:
        """Run one of this admin's actions on the posted job ids (POST only, CSRF-checked)."""
        links.require_view_permission(self, request)
        fallback = links.admin_url(self, "changelist")
        back = HttpResponseRedirect(links.safe_next(request, fallback))
        name = request.POST.get("action", "")
        if name not in self.get_job_actions(request):
            if name in (self.actions or ()):
                raise PermissionDenied
            messages.error(request, "Choose an action to run on the selected jobs.")
            return back
        try:
            ids = links.posted_ids(request)
        except ValueError:
            messages.error(
                request,
                "Job ids must be numbers (whole, below 2**63); nothing was changed.",
            )
            return back
        if not ids:
            messages.warning(
                request, "Select at least one job for the action; nothing was changed."
            )
            return back
        if len(ids) > self.max_selected:
            messages.error(
                request,
                f"{len(ids)} jobs were selected; an action takes at most "
                f"{self.max_selected}. Nothing was changed.",
            )
            return back
        # The names in JobAdmin.actions are its methods.
        response = getattr(self, name)(request, Job.objects.filter(pk__in=ids))
        return response or back

    @admin.action(
        description="Requeue selected jobs (run now)", permissions=["requeue"]
    )
    def requeue_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        reset_attempts = request.POST.get("reset_attempts") in ("on", "1", "true")
        ids = links.posted_ids(request)
        before = {job.pk: job for job in queryset if job.state != JobState.QUEUED}
        result = Job.objects.requeue(ids, reset_attempts=reset_attempts)
        requeued = Job.objects.filter(
            pk__in=list(before), failed_at__isnull=True, execute_at__lte=timezone.now()
        )
        by_state: dict[str, list[Job]] = {}
        for job in requeued:
            by_state.setdefault(before[job.pk].state, []).append(job)
        for previous, jobs in sorted(by_state.items()):
            note = (
                f"Requeued (was {previous}): set execute_at to now"
                + (", failed_at cleared" if previous == JobState.FAILED else "")
                + (", attempts reset to 0" if reset_attempts else "")
            )
            self.log_jobs(request, jobs, CHANGE, note)
        self.message_user(
            request,
            describe_requeue(result, reset_attempts=reset_attempts),
            message_level(result.requeued, result.skipped_running),
        )

    @admin.action(description="Delete selected jobs", permissions=["delete"])
    def delete_jobs(
        self, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponse | None:
        ids = links.posted_ids(request)
        before = list(queryset.order_by("id"))
        if request.POST.get("confirm") != "yes":
            return self.delete_confirmation(request, ids, before, state.read_running())
        result = Job.objects.delete_jobs(ids)
        remaining = set(
            Job.objects.filter(pk__in=[job.pk for job in before]).values_list(
                "pk", flat=True
            )
        )
        deleted = [job for job in before if job.pk not in remaining]
        self.log_jobs(request, deleted, DELETION, "Deleted from the dashboard")
        self.message_user(
            request,
            describe_delete(result),
            message_level(result.deleted, result.skipped_running),
        )
        return None

    def delete_confirmation(
        self,
        request: HttpRequest,
        ids: Sequence[int],
        jobs: list[Job],
        running: state.Running,
    ) -> TemplateResponse:
        changelist = links.admin_url(self, "changelist")
        job_url = links.job_url_for(self)
        context = {
            **links.page_context(self, request, "Delete jobs: are you sure?"),
            "jobs": jobs,
            "running_ids": running.ids,
            "running": running,
            "ids": ids,
            "missing": len(ids) - len(jobs),
            "action_url": links.admin_url(self, "action"),
            "next": links.safe_next(request, changelist),
            "rows": [(job, job_url(job.pk)) for job in jobs],
        }
        return TemplateResponse(request, "dpq_admin/delete_confirmation.html", context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        """Django's delete page, answered with dpq's confirmation and SKIP LOCKED delete.

        Django's own runs an ORM DELETE, which waits until a running job's worker commits;
        this one refuses a running job at once.
        """
        if not self.has_delete_permission(request):
            raise PermissionDenied
        allowed = (*links.SAFE_METHODS, *links.POST_ONLY)
        if request.method not in allowed:
            return HttpResponseNotAllowed(allowed)
        dashboard = HttpResponseRedirect(links.admin_url(self, "changelist"))
        job_id = links.parse_job_id(object_id)
        if job_id is None:
            self.message_user(
                request,
                f"{object_id!r} is not a job id; nothing was deleted.",
                messages.ERROR,
            )
            return dashboard
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            self.message_user(request, missing_job(job_id), messages.WARNING)
            return dashboard
        # Django's confirmation form posts post=yes: any non-empty POST confirms.
        if request.method == "POST" and request.POST:
            return self.delete_one(request, job)
        running = state.read_running()
        if job_id in running.ids:
            self.message_user(request, running_refusal(job_id), messages.ERROR)
            return HttpResponseRedirect(links.admin_url(self, "job", job_id))
        return self.delete_confirmation(request, [job_id], [job], running)

    def delete_one(self, request: HttpRequest, job: Job) -> HttpResponse:
        """Delete one job unless a worker holds it; log it and say what happened."""
        result = Job.objects.delete_jobs([job.pk])
        if result.skipped_running:
            self.message_user(request, running_refusal(job.pk), messages.ERROR)
            return HttpResponseRedirect(links.admin_url(self, "job", job.pk))
        if result.deleted:
            self.log_jobs(request, [job], DELETION, "Deleted from the dashboard")
            self.message_user(request, f"Deleted job {job.pk}.", messages.SUCCESS)
        else:
            self.message_user(request, missing_job(job.pk), messages.WARNING)
        return HttpResponseRedirect(links.admin_url(self, "changelist"))

    def requeue_failed_view(self, request: HttpRequest) -> HttpResponse:
        """Requeue every failed job of a queue and/or a task (POST only)."""
        if not self.has_requeue_permission(request):
            raise PermissionDenied
        queues, tasks = state.read_failed_names()
        form = forms.RequeueFailedForm(request.POST, queues=queues, tasks=tasks)
        fallback = links.admin_url(self, "failed")
        back = HttpResponseRedirect(links.safe_next(request, fallback))
        if not form.is_valid():
            messages.error(
                request, "No failed jobs of that queue or task; nothing was changed."
            )
            return back
        self.requeue_all_failed(
            request,
            queue=form.cleaned_data["queue"] or None,
            task=form.cleaned_data["task"] or None,
            reset_attempts=form.cleaned_data["reset_attempts"],
        )
        return back

    def requeue_all_failed(
        self,
        request: HttpRequest,
        *,
        queue: str | None,
        task: str | None,
        reset_attempts: bool,
    ) -> RequeueResult:
        """Requeue the failed jobs of a queue and/or task; log one entry and tell the user."""
        result = Job.objects.requeue_failed(
            queue=queue, task=task, reset_attempts=reset_attempts
        )
        scope = (
            ", ".join(
                f"{name} {value!r}"
                for name, value in (("queue", queue), ("task", task))
                if value
            )
            or "every queue"
        )
        text = describe_requeue(result, reset_attempts=reset_attempts)
        LogEntry.objects.create(
            user_id=request.user.pk,
            content_type=ContentType.objects.get_for_model(Job),
            object_id=None,
            object_repr=f"failed jobs of {scope}"[:200],
            action_flag=CHANGE,
            change_message=f"Requeue all failed jobs of {scope}: {text}",
        )
        self.message_user(
            request,
            f"Failed jobs of {scope}: {text}",
            message_level(result.requeued, result.skipped_running),
        )
        return result

    def log_jobs(
        self, request: HttpRequest, jobs: list[Job], flag: int, message: str
    ) -> None:
        """Write one admin history entry per job changed (one INSERT for all of them)."""
        if jobs:
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=jobs,
                action_flag=flag,
                change_message=message,
            )
