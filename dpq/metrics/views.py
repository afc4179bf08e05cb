"""The metrics view: queue depth in Prometheus's text format (dpq.metrics.collector).

Open to anyone who can reach the URL, as Prometheus endpoints usually are: route it where
only the scraper gets to it, or wrap ``metrics`` in your own access check.
"""

from __future__ import annotations

import importlib.util
import logging

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

from dpq.metrics import MISSING
from dpq.metrics.collector import QueueCollector

logger = logging.getLogger("dpq.metrics")

# Looked for, not imported: a worker started with --processes --metrics-port imports
# prometheus-client only once it has set PROMETHEUS_MULTIPROC_DIR, and Django's checks
# load the URLs before that.
if importlib.util.find_spec("prometheus_client") is None:
    raise ImproperlyConfigured(MISSING)


def metrics(request: HttpRequest, using: str = "default") -> HttpResponse:
    """Scrape the queues now: one status read per request."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        generate_latest,
    )

    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(using))
    try:
        body = generate_latest(registry)
    except DatabaseError as exc:
        logger.warning("dpq metrics: the database did not answer: %s", exc)
        return HttpResponse(
            f"dpq metrics: the database did not answer: {str(exc).strip()}\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
