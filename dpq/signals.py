"""Signals sent around a job's life. Receivers run in the worker thread, inside the claim transaction."""

from __future__ import annotations

from django.dispatch import Signal

# use_caching: the receivers of each sender (a Queue class) are looked up once, not under
# the signal's lock for every job; connect() and disconnect() clear what was cached.

# sender: the Queue; job: the new Job (inside the enqueueing transaction).
job_enqueued = Signal(use_caching=True)
# sender: the Queue; job: the claimed Job, before its task runs.
job_started = Signal(use_caching=True)
# sender: the Queue; job, retval, duration (seconds).
job_succeeded = Signal(use_caching=True)
# sender: the Queue; job (with attempts and last_error updated), exc, will_retry (bool),
# duration (seconds the task ran).
job_failed = Signal(use_caching=True)
# sender: the Queue; job: a job just claimed that was running when a worker died (or lost
# its connection) and came back to the queue; job.starts counts its unfinished starts.
# Inside the claim transaction, before the job runs.
job_crashed = Signal(use_caching=True)
# sender: the Queue; role: the worker connection lost ("t1", "t2" ... or "listen"), exc:
# what was raised. The worker reconnects next. Sent by a worker outside any transaction.
connection_lost = Signal(use_caching=True)
