"""The dashboard's Schedules page: each queue's schedules, who schedules them, run now, pause.

ScheduleAdmin is the admin entry of ``dpq.ScheduleState``. The rows are written by the
scheduling workers; the page reads them, and changes them only through ``dpq.schedule_store``
(run_schedule_now, set_schedule_paused). Every change is a POST, permission-checked and
written to the admin's history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_tables2 as tables
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.middleware.csrf import get_token
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timeuntil

from dpq import schedule_store
from dpq.models import ScheduleState
from dpq_admin import params
from dpq_admin import tables as job_tables

LIST_STATES = ("queued", "running", "delayed", "failed", "all")


def format_time(moment: Any) -> str:
    """A stored time in the current time zone, to the second."""
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.isoformat(sep=" ", timespec="seconds")


def next_run_text(row: ScheduleState, now: Any = None) -> str:
    """When a schedule runs next, in words: "in 4 minutes", "due now", "paused"."""
    if row.paused:
        return "paused"
    if row.next_due_at is None:
        return "not known yet (no worker has scheduled it)"
    now = now or timezone.now()
    if row.next_due_at <= now:
        return "due now"
    return f"in {timeuntil(row.next_due_at, now)}"


class ScheduleTable(tables.Table):
    queue = tables.Column()
    name = tables.Column(verbose_name="Task")
    expression = tables.Column(verbose_name="Schedule")
    next_due_at = tables.Column(verbose_name="Runs next")
    last_enqueued_at = tables.Column(verbose_name="Last enqueued")
    scheduler = tables.Column(
        verbose_name="Scheduled by", empty_values=(), orderable=False
    )
    actions = tables.Column(verbose_name="", empty_values=(), orderable=False)

    class Meta:
        template_name = job_tables.TEMPLATE
        attrs = {"class": "dpq-table", "id": "dpq-schedules"}
        order_by = ("queue", "name")

    def __init__(
        self,
        data: Any,
        *,
        leaders: dict[str, str],
        urls: Callable[[str, int], str],
        job_url: Callable[[int], str],
        can_run: bool,
        can_pause: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        self.leaders = leaders
        self.urls = urls
        self.job_url = job_url
        self.can_run = can_run
        self.can_pause = can_pause

    def render_expression(self, value: str, record: ScheduleState) -> SafeString:
        return format_html(
            '<code>{}</code> <span class="dpq-quiet">({})</span>',
            value,
            record.time_zone,
        )

    def render_next_due_at(self, value: Any, record: ScheduleState) -> SafeString:
        return format_html(
            '{}<br><span class="dpq-quiet">{}</span>',
            next_run_text(record),
            format_time(value),
        )

    def render_last_enqueued_at(self, value: Any, record: ScheduleState) -> SafeString:
        if record.last_job_id is None:
            return format_html("{}", format_time(value))
        return format_html(
            '{} (job <a href="{}">{}</a>)',
            format_time(value),
            self.job_url(record.last_job_id),
            record.last_job_id,
        )

    def render_scheduler(self, record: ScheduleState) -> SafeString:
        holder = self.leaders.get(record.queue)
        if holder is None:
            return format_html(
                '<span class="dpq-warning">{}</span>', "no worker schedules it now"
            )
        return format_html("<code>{}</code>", holder)

    def render_actions(self, record: ScheduleState) -> SafeString:
        token = get_token(self.request)
        buttons = []
        if self.can_run:
            buttons.append(("run", "Run now"))
        if self.can_pause:
            buttons.append(
                ("resume", "Resume") if record.paused else ("pause", "Pause")
            )
        return format_html_join(
            "",
            '<form method="post" action="{}" class="dpq-inline-form">'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<input type="submit" value="{}"></form>',
            ((self.urls(view, record.pk), token, label) for view, label in buttons),
        )


@admin.register(ScheduleState)
class ScheduleAdmin(admin.ModelAdmin):
    """The "Schedules" entry: one page, and POST-only run, pause and resume."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # schedules are declared in code, on the queue

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            False  # only run, pause and resume change a schedule, each with its check
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.run_schedule")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_schedulestate")

    def url(self, view: str, *args: object) -> str:
        info = self.opts.app_label, self.opts.model_name
        return reverse(
            "{}:{}_{}_{}".format(self.admin_site.name, *info, view),
            args=args,
            current_app=self.admin_site.name,
        )

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name

        def post_only(view: Callable[..., HttpResponse]) -> Callable:
            def call(request: HttpRequest, schedule_id: int) -> HttpResponse:
                if request.method != "POST":
                    return HttpResponseNotAllowed(["POST"])
                return view(request, schedule_id)

            return self.admin_site.admin_view(call)

        return [
            path(
                f"<int:schedule_id>/{view}/",
                post_only(getattr(self, f"{view}_view")),
                name="{}_{}_{}".format(*info, view),
            )
            for view in ("run", "pause", "resume")
        ] + super().get_urls()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        rows = list(ScheduleState.objects.all())
        leaders = schedule_store.scheduling_workers(sorted({row.queue for row in rows}))
        job_base = reverse(
            f"{self.admin_site.name}:dpq_job_job",
            args=[0],
            current_app=self.admin_site.name,
        )[: -len("0/")]
        table = ScheduleTable(
            rows,
            leaders=leaders,
            urls=lambda view, pk: self.url(view, pk),
            job_url=lambda job_id: f"{job_base}{job_id}/",
            can_run=self.has_run_permission(request),
            can_pause=self.has_pause_permission(request),
        )
        notices = params.Notices()
        params.configure(request, table, notices, per_page=0, paginate=False)
        job_url = lambda name: reverse(  # noqa: E731
            f"{self.admin_site.name}:dpq_job_{name}", current_app=self.admin_site.name
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Schedules",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "table": table,
            "schedules": rows,
            "dashboard_url": job_url("changelist"),
            "list_urls": [(name, job_url(name)) for name in LIST_STATES],
            "schedules_page": True,
            "health_url": job_url("health"),
            "bad_params": notices,
        }
        return TemplateResponse(request, "dpq_admin/schedules.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        return HttpResponseRedirect(self.url("changelist"))

    def run_view(self, request: HttpRequest, schedule_id: int) -> HttpResponse:
        if not self.has_run_permission(request):
            raise PermissionDenied
        row = ScheduleState.objects.filter(pk=schedule_id).first()
        result = schedule_store.run_schedule_now(schedule_id) if row else None
        if result is None:
            self.message_user(
                request, "That schedule no longer exists.", messages.WARNING
            )
        else:
            text = f"Ran {row.name!r} of queue {row.queue!r} now: enqueued job {result.job_id}"
            self.log(request, row, text)
            self.message_user(request, text + ".", messages.SUCCESS)
        return HttpResponseRedirect(self.url("changelist"))

    def pause_view(self, request: HttpRequest, schedule_id: int) -> HttpResponse:
        return self.set_paused(request, schedule_id, paused=True)

    def resume_view(self, request: HttpRequest, schedule_id: int) -> HttpResponse:
        return self.set_paused(request, schedule_id, paused=False)

    def set_paused(
        self, request: HttpRequest, schedule_id: int, *, paused: bool
    ) -> HttpResponse:
        if not self.has_pause_permission(request):
            raise PermissionDenied
        row = ScheduleState.objects.filter(pk=schedule_id).first()
        if row is None or not schedule_store.set_schedule_paused(
            schedule_id, paused=paused
        ):
            self.message_user(
                request, "That schedule no longer exists.", messages.WARNING
            )
        else:
            text = (
                f"Paused {row.name!r} of queue {row.queue!r}: no job is enqueued until it "
                f"is resumed"
                if paused
                else f"Resumed {row.name!r} of queue {row.queue!r}: it runs again from "
                f"its next due time after now"
            )
            self.log(request, row, text)
            self.message_user(request, text + ".", messages.SUCCESS)
        return HttpResponseRedirect(self.url("changelist"))

    def log(self, request: HttpRequest, row: ScheduleState, message: str) -> None:
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=[row],
            action_flag=CHANGE,
            change_message=message,
        )
