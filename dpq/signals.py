"""Signals sent around a job's life. Receivers run in the worker thread, inside the claim transaction."""

from __future__ import annotations

from django.dispatch import Signal

# sender: the Queue; job: the new Job (inside the enqueueing transaction).
job_enqueued = Signal()
# sender: the Queue; job: the claimed Job, before its task runs.
job_started = Signal()
# sender: the Queue; job, retval, duration (seconds).
job_succeeded = Signal()
# sender: the Queue; job (with attempts and last_error updated), exc, will_retry (bool).
job_failed = Signal()
