"""The admin, which holds the dpq dashboard; the site's root opens the dashboard."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:dpq_job_changelist")),
    path("admin/", admin.site.urls),
]
