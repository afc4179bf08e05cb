"""The job page's controls: edit a failed or delayed job and requeue it, run a job again.

``JobAdminControls`` is a mixin of ``JobAdmin``. Both need the requeue permission; changes
are POSTs (CSRF-checked by the admin), go through ``dpq.controls`` (SKIP LOCKED, never
waiting for a worker) and are written to the admin's history. Secret values the page masks
stay masked in the edit form and are kept unless the operator types new ones.
"""

from __future__ import annotations

import hashlib
import json

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from dpq import controls, exceptions
from dpq.models import PRIORITY_MAX, PRIORITY_MIN, Job, JobState, JSONValue
from dpq_admin import links, redact

MAX_ARGS_LENGTH = 1_000_000


def args_digest(args: JSONValue) -> str:
    """A digest of stored args: the form carries it, so an edit made meanwhile is noticed."""
    text = json.dumps(args, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def shown_args(queue: str, args: JSONValue) -> JSONValue:
    return redact.redact_args(queue, args)


def restore_masked(
    submitted: JSONValue, shown: JSONValue, stored: JSONValue
) -> JSONValue:
    """The submitted args with every part left as shown (masked) replaced by the stored one."""
    if submitted == shown:
        return stored
    if (
        isinstance(submitted, dict)
        and isinstance(shown, dict)
        and isinstance(stored, dict)
    ):
        return {
            key: restore_masked(value, shown[key], stored[key])
            if key in shown and key in stored
            else value
            for key, value in submitted.items()
        }
    if (
        isinstance(submitted, list)
        and isinstance(shown, list)
        and isinstance(stored, list)
        and len(shown) == len(stored)
        and len(submitted) == len(shown)
    ):
        return [
            restore_masked(value, shown[index], stored[index])
            for index, value in enumerate(submitted)
        ]
    return submitted


class EditJobForm(forms.Form):
    args = forms.CharField(
        widget=forms.Textarea(
            attrs={"rows": 12, "cols": 80, "class": "vLargeTextField"}
        ),
        max_length=MAX_ARGS_LENGTH,
        strip=False,
        help_text=f"JSON. {redact.MASK} stands for a secret value: it is kept unless "
        "you replace it.",
    )
    priority = forms.IntegerField(
        min_value=PRIORITY_MIN,
        max_value=PRIORITY_MAX,
        help_text="Higher runs first.",
    )
    execute_at = forms.DateTimeField(
        required=False,
        label="Run at",
        help_text="Empty: now. In the server's time zone, e.g. 2026-01-31 14:30:00.",
    )
    reset_attempts = forms.BooleanField(required=False, label="Reset attempts")
    digest = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def clean_args(self) -> JSONValue:
        text = self.cleaned_data["args"]
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(
                f"This is not valid JSON ({exc}); nothing was saved. Fix it and save again."
            ) from exc


class JobAdminControls:
    """Edit-and-requeue and run-again, for users with the requeue permission."""

    def edit_job_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        """GET: the edit form of a failed or delayed job. POST: save it and requeue the job."""
        if not self.has_requeue_permission(request):
            raise PermissionDenied
        job_page = HttpResponseRedirect(links.admin_url(self, "job", job_id))
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            self.message_user(
                request,
                f"Job {job_id} does not exist: it ran and succeeded, or it was deleted.",
                messages.WARNING,
            )
            return HttpResponseRedirect(links.admin_url(self, "changelist"))
        if request.method == "POST":
            form = EditJobForm(request.POST)
            if form.is_valid():
                done = self.save_edit(request, job, form)
                if done:
                    return job_page
        else:
            if job.state == JobState.QUEUED:
                self.message_user(
                    request,
                    f"Job {job_id} is queued: a worker may start it any moment, so it "
                    "cannot be edited; only failed and delayed jobs can.",
                    messages.ERROR,
                )
                return job_page
            form = EditJobForm(
                initial={
                    "args": json.dumps(
                        shown_args(job.queue, job.args),
                        indent=2,
                        sort_keys=True,
                        ensure_ascii=False,
                    ),
                    "priority": job.priority,
                    "execute_at": job.execute_at
                    if job.state == JobState.DELAYED
                    else None,
                    "digest": args_digest(job.args),
                }
            )
        context = {
            **links.page_context(self, request, f"Edit job {job.pk}: {job.task}"),
            "job": job,
            "form": form,
            "job_url": links.admin_url(self, "job", job.pk),
        }
        return TemplateResponse(request, "dpq_admin/job_edit.html", context)

    def save_edit(self, request: HttpRequest, job: Job, form: EditJobForm) -> bool:
        """Requeue the job with the form's values; True when saved, else the form has why."""
        data = form.cleaned_data

        def new_args(stored: JSONValue) -> JSONValue:
            if args_digest(stored) != data["digest"]:
                raise exceptions.JobNotEditableError(
                    f"job {job.pk}'s args changed since this form was opened; nothing "
                    "was saved. Reload the page to edit the current args"
                )
            restored = restore_masked(
                data["args"], shown_args(job.queue, stored), stored
            )
            if redact.MASK in json.dumps(restored) and redact.MASK not in json.dumps(
                stored
            ):
                raise exceptions.JobNotEditableError(
                    f"the args still contain {redact.MASK} where the job had no secret "
                    "(a masked value can be kept only under its own key); type the value"
                )
            return restored

        try:
            result = controls.edit_job(
                job.pk,
                args=new_args,
                priority=data["priority"],
                execute_at=data["execute_at"],
                reset_attempts=data["reset_attempts"],
            )
        except (exceptions.JobRunningError, exceptions.JobNotEditableError) as exc:
            form.add_error(None, f"{str(exc)[0].upper()}{str(exc)[1:]}.")
            return False
        except exceptions.JobNotFoundError as exc:
            form.add_error(None, f"{str(exc)[0].upper()}{str(exc)[1:]}.")
            return False
        when = (
            f"run at {data['execute_at'].isoformat(sep=' ', timespec='seconds')}"
            if data["execute_at"]
            else "run now"
        )
        changed = [name for name in form.changed_data if name != "digest"]
        note = (
            f"Edited and requeued (was {result.previous_state}): {when}, priority "
            f"{data['priority']}"
            + (
                ", failed_at cleared"
                if result.previous_state == JobState.FAILED
                else ""
            )
            + (", attempts reset to 0" if data["reset_attempts"] else "")
            + (f"; changed {', '.join(changed)}" if changed else "")
        )
        self.log_change(request, job, note)
        self.message_user(
            request, f"Job {job.pk}: {note[0].lower()}{note[1:]}.", messages.SUCCESS
        )
        return True

    def run_again_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        """Enqueue a copy of the job, ready now (POST only); show the copy's page."""
        if not self.has_requeue_permission(request):
            raise PermissionDenied
        try:
            result = controls.run_again(job_id)
        except exceptions.JobNotFoundError:
            self.message_user(
                request,
                f"Job {job_id} does not exist: it ran and succeeded, or it was deleted. "
                "Nothing was enqueued.",
                messages.WARNING,
            )
            return HttpResponseRedirect(links.admin_url(self, "changelist"))
        original = Job.objects.filter(pk=job_id).first()
        copy = Job.objects.filter(pk=result.job_id).first()
        woken = (
            "its workers were notified"
            if result.notified
            else "its workers pick it up at their next check"
        )
        if original is not None:
            self.log_change(request, original, f"Ran again as job {result.job_id}")
        if copy is not None:
            self.log_addition(request, copy, f"Copy of job {job_id}, run again")
        self.message_user(
            request,
            f"Enqueued job {result.job_id}, a copy of job {job_id}, on queue "
            f"{result.queue!r}; {woken}.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(links.admin_url(self, "job", result.job_id))
