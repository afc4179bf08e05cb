"""Pause and resume a queue from the dashboard.

``JobAdminPauses`` is a mixin of ``JobAdmin``. Pausing needs ``dpq.change_queuepause``; the
change goes through ``dpq.pauses``, is a POST (CSRF-checked by the admin) and is written to
the admin's history.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from dpq import pauses
from dpq.models import QueuePause
from dpq.validation import MAX_QUEUE_NAME_LENGTH
from dpq_admin import links


def pause_context(
    model_admin: JobAdminPauses, request: HttpRequest, queue_names: list[str]
) -> dict[str, object]:
    """The dashboard's pause section: each queue with jobs or a pause, and its state."""
    paused = pauses.paused_queues()
    return {
        "pause_rows": [
            (name, paused.get(name)) for name in sorted({*queue_names, *paused})
        ],
        "can_pause": model_admin.has_pause_permission(request),
        "pause_url": links.admin_url(model_admin, "pause_queue"),
        "resume_url": links.admin_url(model_admin, "resume_queue"),
    }


class JobAdminPauses:
    """POST-only pause and resume of a queue."""

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("dpq.change_queuepause")

    def pause_queue_view(self, request: HttpRequest) -> HttpResponse:
        return self.set_queue_paused(request, paused=True)

    def resume_queue_view(self, request: HttpRequest) -> HttpResponse:
        return self.set_queue_paused(request, paused=False)

    def set_queue_paused(self, request: HttpRequest, *, paused: bool) -> HttpResponse:
        if not self.has_pause_permission(request):
            raise PermissionDenied
        back = HttpResponseRedirect(links.admin_url(self, "changelist"))
        name = request.POST.get("queue", "")
        if not name or len(name) > MAX_QUEUE_NAME_LENGTH or "\x00" in name:
            self.message_user(
                request,
                f"Name a queue (1 to {MAX_QUEUE_NAME_LENGTH} characters); nothing was changed.",
                messages.ERROR,
            )
            return back
        who = request.user.get_username()
        if paused:
            changed = pauses.pause_queue(name, by=who)
            text = (
                f"Paused queue {name!r}: its workers stop claiming; running jobs finish"
                if changed
                else f"Queue {name!r} was paused already"
            )
        else:
            changed = pauses.resume_queue(name)
            text = (
                f"Resumed queue {name!r}: its workers claim again"
                if changed
                else f"Queue {name!r} was not paused"
            )
        if changed:
            LogEntry.objects.create(
                user_id=request.user.pk,
                content_type=ContentType.objects.get_for_model(QueuePause),
                object_id=name,
                object_repr=f"queue {name}"[:200],
                action_flag=CHANGE,
                change_message=text,
            )
        self.message_user(
            request, text + ".", messages.SUCCESS if changed else messages.INFO
        )
        return back
