"""The queue-depth metrics view (dpq.metrics.urls), scraped over HTTP and parsed."""

from __future__ import annotations

import datetime
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from dpq.models import Job, ScheduleState


def samples(text: str) -> dict[tuple, float]:
    """Every sample of the exposition text: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def live_url(transactional_db):
    """The test project served over HTTP by a WSGI server in a thread."""
    server = make_server("127.0.0.1", 0, WSGIHandler(), handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def scrape(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return (
            response.status,
            response.headers["Content-Type"],
            response.read().decode(),
        )


def test_queue_depth_scraped_over_http(live_url, make_job):
    later = timezone.now() + datetime.timedelta(hours=1)
    for _ in range(3):
        make_job(execute_at=timezone.now() - datetime.timedelta(seconds=30))
    make_job(execute_at=later)
    make_job(failed_at=timezone.now())
    ScheduleState.objects.create(
        queue="default",
        name="nightly",
        expression="@daily",
        last_due_at=timezone.now(),
        next_due_at=timezone.now() - datetime.timedelta(seconds=90),
    )
    status, content_type, text = scrape(f"{live_url}/metrics/")
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    values = samples(text)

    def job_count(state: str) -> float:
        return values[("dpq_queue_jobs", (("queue", "default"), ("state", state)))]

    assert [job_count(s) for s in ("queued", "running", "delayed", "failed")] == [
        3,
        0,
        1,
        1,
    ]
    age = values[("dpq_queue_oldest_queued_age_seconds", (("queue", "default"),))]
    assert 29 <= age < 300
    lag = values[
        ("dpq_schedule_lag_seconds", (("queue", "default"), ("schedule", "nightly")))
    ]
    assert 89 <= lag < 400
    assert (
        values[("dpq_schedule_paused", (("queue", "default"), ("schedule", "nightly")))]
        == 0
    )


def test_one_set_of_queries_per_scrape(transactional_db, client, make_job):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_job()
    with CaptureQueriesContext(connection) as first:
        assert client.get("/metrics/").status_code == 200
    for n in range(20):
        Job.objects.create(queue=f"q{n % 4}", task="noop")
    with CaptureQueriesContext(connection) as second:
        assert client.get("/metrics/").status_code == 200
    # The same statements however many jobs and queues: nothing per job or per queue
    # (BEGIN, SET LOCAL, savepoint and COMMIT included).
    assert len(second.captured_queries) == len(first.captured_queries) <= 15


def test_only_get_and_head(transactional_db, client):
    assert client.post("/metrics/").status_code == 405
    assert client.head("/metrics/").status_code == 200
