"""The dashboard's throughput chart: server-rendered SVG from dpq_throughput."""

from __future__ import annotations

import datetime

from django.utils import timezone

from dpq.models import ThroughputMinute
from tests.dashboard.conftest import url


def test_dashboard_draws_the_last_day(viewer_client):
    minute = timezone.now().replace(second=0, microsecond=0)
    ThroughputMinute.objects.create(queue="default", minute=minute, done=40, failed=2)
    ThroughputMinute.objects.create(
        queue="<b>reports</b>", minute=minute - datetime.timedelta(hours=3), done=5
    )
    ThroughputMinute.objects.create(
        queue="default", minute=minute - datetime.timedelta(hours=30), done=999
    )

    response = viewer_client.get(url("changelist"))

    assert response.status_code == 200
    page = response.content.decode()
    assert '<svg class="dpq-chart" id="dpq-throughput-chart"' in page
    assert "40 per minute" in page  # the scale's top: the busiest minute
    assert (
        "45 done" in page and "2 failed" in page
    )  # the minute 30 hours ago is left out
    assert "&lt;b&gt;reports&lt;/b&gt;: 5 done" in page
    assert "<b>reports</b>" not in page
    assert "http://" not in page.split('xmlns="http://www.w3.org/2000/svg"')[1][:2000]


def test_dashboard_without_history_still_draws(viewer_client):
    response = viewer_client.get(url("changelist"))
    assert response.status_code == 200
    assert "0 done" in response.content.decode()
