"""Claims lost with a connection: relocked after a reconnect, whatever server answers now."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import connection

from dpq.starts import ClaimsInFlight


def next_xid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid_snapshot_xmax(txid_current_snapshot())")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_lost_claim_the_server_never_saw_is_skipped_not_an_error(make_job):
    """After a failover, a claim that ran on the old primary may have a transaction id the
    new one has not reached: its jobs were never locked here, and asking about it fails."""
    job = make_job()
    claims = ClaimsInFlight()
    claims.hold("t1", [SimpleNamespace(id=job.id, claim_xid=next_xid() + 1000)])
    claims.lose("t1")

    assert claims.relock_lost("default", "dpq_job") == []
    assert claims.all() == []
