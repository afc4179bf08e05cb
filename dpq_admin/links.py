"""What the dashboard's pages share: their URLs, their context, the ids a request names.

Functions of the model admin rather than methods, so that the page and action mixins
(``views``, ``actions``) each read alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from dpq.models import Job
from dpq_admin import state, tables

if TYPE_CHECKING:
    from django.http import HttpRequest

    from dpq_admin.admin import JobAdmin

SAFE_METHODS = ("GET", "HEAD")
POST_ONLY = ("POST",)
# The job lists, one URL each: admin:dpq_job_queued, ..., admin:dpq_job_all.
LIST_STATES = ("queued", "running", "delayed", "failed", "all")
# PostgreSQL's bigint: a larger id would fail in the database, not find nothing.
MAX_JOB_ID = 2**63 - 1


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
        "health_url": admin_url(model_admin, "health"),
    }


def require_view_permission(model_admin: JobAdmin, request: HttpRequest) -> None:
    # admin_view() only checks that the user is staff.
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


def parse_job_id(text: str) -> int | None:
    """The job id a URL names, or None when ``text`` is not one ("abc", "²", past bigint)."""
    too_long = len(text) > len(str(MAX_JOB_ID))
    if text.isascii() and text.isdigit() and not too_long and int(text) <= MAX_JOB_ID:
        return int(text)
    return None


def posted_ids(request: HttpRequest) -> list[int]:
    """The job ids a form posted, sorted; ValueError when one is not a number or past bigint."""
    ids = sorted({int(value) for value in request.POST.getlist("ids")})
    if any(abs(job_id) > MAX_JOB_ID for job_id in ids):
        raise ValueError(f"job ids must be at most {MAX_JOB_ID}")
    return ids
