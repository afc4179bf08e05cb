"""What a recorded run tells the world: its log line and its signal.

Sent once the run's transaction has committed (or, for job_started, inside it); a signal
receiver that raises is logged and changes nothing.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, transaction
from django.dispatch import Signal
from django.utils import timezone

from dpq import signals

if TYPE_CHECKING:
    from dpq.outcomes import ClaimOutcome, Run
    from dpq.queue import Queue

logger = logging.getLogger(__name__)


def log_callback_error(queue: Queue, outcome: ClaimOutcome, error: Exception) -> None:
    """Log a transaction.on_commit callback that raised after the claim committed."""
    ids = ", ".join(str(job.id) for job in outcome.jobs)
    queue.logger.error(
        "A transaction.on_commit callback raised after the claim of job(s) %s committed: "
        "their outcomes stand, and Django skipped the callbacks registered after it: %s",
        ids,
        one_line(error),
        exc_info=error,
        extra={"job_ids": [job.id for job in outcome.jobs], "queue": queue.name},
    )


def announce(queue: Queue, run: Run) -> None:
    """Log a recorded run and send its signal (after its transaction committed)."""
    job = run.job
    if not run.recorded:
        return
    extra = {"job_id": job.id, "task": job.task, "queue": queue.name}
    if run.exc is None:
        if queue.logger.isEnabledFor(logging.INFO):
            queue.logger.info(
                "Job %s (%s) succeeded in %.3fs",
                job.id,
                job.task,
                run.elapsed,
                extra={**extra, "duration": run.elapsed},
            )
        send(
            queue,
            signals.job_succeeded,
            job=job,
            retval=run.retval,
            duration=run.elapsed,
        )
        return
    extra["attempts"] = job.attempts
    if run.give_up:
        job.failed_at = timezone.now()
        queue.logger.error(
            "Job %s (%s) failed after %s attempt(s) and is kept as failed: %s",
            job.id,
            job.task,
            job.attempts,
            one_line(run.exc),
            exc_info=run.exc if run.error_text is None else None,
            extra=extra,
        )
    else:
        job.execute_at = timezone.now() + datetime.timedelta(seconds=run.retry_in)
        queue.logger.warning(
            "Job %s (%s) failed (attempt %s of %s); retrying in %.1fs: %s",
            job.id,
            job.task,
            job.attempts,
            queue.retry_policy_for(job.task).max_attempts,
            run.retry_in,
            one_line(run.exc),
            exc_info=run.exc,
            extra=extra,
        )
    send(
        queue,
        signals.job_failed,
        job=job,
        exc=run.exc,
        will_retry=not run.give_up,
        duration=run.elapsed,
    )


def send(queue: Queue, signal: Signal, **kwargs: Any) -> None:
    """Send a dpq signal; a receiver that raises is logged and changes nothing else.

    Inside a transaction the receivers run in a savepoint, so that a statement of theirs
    that fails is rolled back alone instead of breaking the job's transaction.
    """
    sender = type(queue)
    if not signal.has_listeners(sender):
        return
    responses: list[tuple[Any, Any]] = []
    try:
        if connections[queue.using].in_atomic_block:
            with transaction.atomic(using=queue.using):
                responses = signal.send_robust(sender=sender, queue=queue, **kwargs)
        else:
            responses = signal.send_robust(sender=sender, queue=queue, **kwargs)
    except (
        DatabaseError
    ) as exc:  # a receiver's failed statement, met at the savepoint's end
        responses = [*responses, (None, exc)]
    for receiver, response in responses:
        if isinstance(response, BaseException):
            logger.error(
                "A receiver of a dpq signal raised (%r); the job's outcome stands: %s",
                receiver,
                one_line(response),
                exc_info=response,
                extra={"job_id": getattr(kwargs.get("job"), "id", None)},
            )


def one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__
