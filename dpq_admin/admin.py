"""JobAdmin: the "Jobs" entry of the admin index, its URLs, permissions and actions.

Its pages come from five mixins: ``JobAdminViews`` (views.py: the dashboard, the job
lists, a job), ``JobAdminActions`` (actions.py: requeue, delete, their confirmation),
``JobAdminHealth`` (health.py: the Queue health page), ``JobAdminControls`` (controls.py:
edit and requeue, run again) and ``JobAdminPauses`` (pauses.py: pause and resume a queue).
Django's own add, change and delete pages and its delete_selected action are refused,
redirected or answered by dpq's, so no URL waits on a worker's row lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, path

from dpq.models import Job, TaskResult
from dpq_admin import links
from dpq_admin.actions import JobAdminActions
from dpq_admin.controls import JobAdminControls
from dpq_admin.health import JobAdminHealth
from dpq_admin.pauses import JobAdminPauses
from dpq_admin.views import JobAdminViews


@admin.register(Job)
class JobAdmin(
    JobAdminViews,
    JobAdminActions,
    JobAdminHealth,
    JobAdminControls,
    JobAdminPauses,
    admin.ModelAdmin,
):
    actions = ["requeue_jobs", "delete_jobs"]
    # A selection larger than this is refused; pages show 50 jobs.
    max_selected = 1000

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: Job | None = None
    ) -> bool:
        # Jobs change only through the actions, each with its own permission.
        return False

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.requeue_job")

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name

        def wrap(
            view: Callable[..., HttpResponse],
            methods: Sequence[str] = links.SAFE_METHODS,
            **kwargs: object,
        ) -> Callable:
            def call(request: HttpRequest, **url_kwargs: object) -> HttpResponse:
                # A GET never changes anything: actions answer POST only.
                if request.method not in methods:
                    return HttpResponseNotAllowed(methods)
                request.current_app = self.admin_site.name
                return view(request, **kwargs, **url_kwargs)

            return self.admin_site.admin_view(call)

        pages = [
            path(
                f"{list_state}/",
                wrap(self.job_list_view, list_state=list_state),
                name="{}_{}_{}".format(*info, list_state),
            )
            for list_state in links.LIST_STATES
        ]
        pages += [
            path(
                "<int:job_id>/",
                wrap(self.job_view),
                name="{}_{}_job".format(*info),
            ),
            path(
                "health/",
                wrap(self.health_view),
                name="{}_{}_health".format(*info),
            ),
            path(
                "action/",
                wrap(self.action_view, links.POST_ONLY),
                name="{}_{}_action".format(*info),
            ),
            path(
                "requeue-failed/",
                wrap(self.requeue_failed_view, links.POST_ONLY),
                name="{}_{}_requeue_failed".format(*info),
            ),
            path(
                "<int:job_id>/edit/",
                wrap(self.edit_job_view, (*links.SAFE_METHODS, *links.POST_ONLY)),
                name="{}_{}_edit".format(*info),
            ),
            path(
                "<int:job_id>/run-again/",
                wrap(self.run_again_view, links.POST_ONLY),
                name="{}_{}_run_again".format(*info),
            ),
            path(
                "pause/",
                wrap(self.pause_queue_view, links.POST_ONLY),
                name="{}_{}_pause_queue".format(*info),
            ),
            path(
                "resume/",
                wrap(self.resume_queue_view, links.POST_ONLY),
                name="{}_{}_resume_queue".format(*info),
            ),
        ]
        return pages + super().get_urls()


@admin.register(TaskResult)
class TaskResultAdmin(admin.ModelAdmin):
    """Recent results of Django tasks (dpq.tasks.DpqBackend), newest first; read-only.

    A result's task is still a job in the Jobs pages while it is queued, running, waiting
    for a retry or failed: the id links there.
    """

    list_display = [
        "job_id",
        "task_path",
        "queue_name",
        "status",
        "attempts",
        "finished_at",
    ]
    list_filter = ["status", "queue_name", "backend"]
    search_fields = ["task_path", "=job_id"]
    ordering = ["-finished_at"]
    show_full_result_count = False
    readonly_fields = [field.name for field in TaskResult._meta.fields]

    @admin.display(description="attempts")
    def attempts(self, obj: TaskResult) -> int:
        return len(obj.worker_ids or [])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: TaskResult | None = None
    ) -> bool:
        return False
