"""The Queue health page: vacuum, the oldest transaction, connections, sizes, with hints."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from tests.conftest import wait_until
from tests.dashboard.conftest import url


def row_text(response, key: str) -> str:
    html = response.content.decode()
    start = html.index(f'id="dpq-health-{key}"')
    return html[start : html.index("</tr>", start)]


@pytest.mark.django_db
def test_health_page_shows_each_check_with_a_hint(viewer_client, make_job):
    make_job("noop")

    response = viewer_client.get(url("health"))

    assert response.status_code == 200
    assert "live" in row_text(response, "dead-rows")
    assert "Last vacuum of the job table" in row_text(response, "vacuum")
    assert " of " in row_text(response, "connections")
    assert "reserved for superusers" in row_text(response, "connections")
    assert "Size of table dpq_job" in row_text(response, "size-dpq_job")
    assert "Size of index dpq_job_claim_idx" in row_text(
        response, "size-dpq_job_claim_idx"
    )


@pytest.mark.django_db(transaction=True)
def test_health_page_names_the_transaction_holding_back_vacuum(viewer_client):
    opened = threading.Event()
    done = threading.Event()

    def hold() -> None:
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SET application_name = 'forgotten-report'")
                cursor.execute("BEGIN")
                cursor.execute("SELECT txid_current()")
                opened.set()
                done.wait(30)
                cursor.execute("ROLLBACK")
        finally:
            other.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    wait_until(opened.is_set, timeout=10)
    try:
        response = viewer_client.get(url("health"))
    finally:
        done.set()
        thread.join(10)

    assert "forgotten-report" in row_text(response, "oldest-transaction")


@pytest.mark.django_db
def test_health_page_needs_view_permission(client, make_staff):
    client.force_login(make_staff())

    assert client.get(url("health")).status_code == 403


@pytest.mark.django_db
def test_every_dashboard_page_links_to_health(viewer_client):
    html = viewer_client.get(url("changelist")).content.decode()

    assert f'href="{url("health")}"' in html
