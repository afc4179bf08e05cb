"""Signal receivers that raise, for worker processes that must not care (DPQ_TEST_RAISING_RECEIVERS)."""

from __future__ import annotations

from django.db import connection

from dpq import signals


class ReceiverError(Exception):
    pass


def raise_in_receiver(signal_name: str):
    def receiver(sender, **kwargs):
        raise ReceiverError(f"receiver of {signal_name} fails on purpose")

    return receiver


def break_the_transaction(sender, **kwargs):
    """A job_started receiver whose statement fails inside the job's transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")


RECEIVERS = [
    (signals.job_started, raise_in_receiver("job_started")),
    (signals.job_started, break_the_transaction),
    (signals.job_succeeded, raise_in_receiver("job_succeeded")),
    (signals.job_failed, raise_in_receiver("job_failed")),
    (signals.job_enqueued, raise_in_receiver("job_enqueued")),
]


def connect_raising_receivers() -> None:
    for signal, receiver in RECEIVERS:
        signal.connect(receiver, weak=False)


def delay_worker_thread_connections(seconds: float) -> None:
    """Each new connection of a worker thread (not the dispatcher's) is ready only after
    ``seconds``: a slow server, or a pooler that makes clients wait."""
    import threading
    import time

    from django.db.backends.signals import connection_created

    def slow(sender, **kwargs) -> None:
        if threading.current_thread().name.startswith("dpq-worker-"):
            time.sleep(seconds)

    connection_created.connect(slow, weak=False)
