"""``path("metrics/", include("dpq.metrics.urls"))``: the queue-depth metrics at /metrics/."""

from __future__ import annotations

from django.urls import path

from dpq.metrics import views

urlpatterns = [path("", views.metrics, name="dpq-metrics")]
