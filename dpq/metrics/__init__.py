"""Prometheus metrics (the ``[metrics]`` extra: prometheus-client).

- dpq.metrics.worker: what a worker counts (``dpq_worker --metrics-port``), from dpq's
  signals, and the HTTP endpoint it serves them on.
- dpq.metrics.collector and dpq.metrics.urls: queue depth, read from the database at each
  scrape, for a URL of the Django project (``path("metrics/", include("dpq.metrics.urls"))``).

Nothing in dpq imports this package unless metrics are asked for.
"""

from __future__ import annotations

MISSING = (
    "dpq's metrics need prometheus-client: pip install 'django-postgres-queue[metrics]'"
)
