"""Task decorators of the original package: ``retry`` and ``repeat``."""

from __future__ import annotations

import datetime
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

if TYPE_CHECKING:
    from dpq.models import BaseJob
    from dpq.queue import Queue, Task

logger = logging.getLogger(__name__)


def repeat(delay: datetime.timedelta) -> Callable[[Task], Task]:
    """Run a task over and over, ``delay`` apart.

    The next run is enqueued before this one runs, in the same transaction: under at-least-once
    delivery runs never overlap, since the next job only becomes visible when this one commits.
    Enqueue the first job yourself.
    """

    def decorator(fn: Task) -> Task:
        def inner(queue: Queue, job: BaseJob) -> Any:
            queue.enqueue(
                job.task,
                job.args,
                execute_at=job.execute_at + delay,
                priority=job.priority,
            )
            return fn(queue, job)

        inner.__name__ = getattr(fn, "__name__", "repeated_task")
        inner.__doc__ = fn.__doc__
        return inner

    return decorator


def exponential_with_jitter(offset: int = 6) -> Callable[[int], datetime.timedelta]:
    """``2 ** (retries + offset)`` seconds, +/- 15 s: 64 s, 128 s, 256 s, ... by default."""

    def delayfn(retries: int) -> datetime.timedelta:
        jitter = random.randrange(-15, 15)
        return datetime.timedelta(seconds=max(0, 2 ** (retries + offset) + jitter))

    return delayfn


def retry(
    max_retries: int,
    delayfn: Callable[[int], datetime.timedelta] | None = None,
    Exc: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> Callable[[Task], Task]:
    """Catch ``Exc`` from a task and put the job back ``delayfn(retries)`` later.

    The retry count lives in ``job.args['retries']`` (args must be a dict). The task's writes
    are rolled back; once ``max_retries`` is reached the exception is logged and the job is
    dropped, as in the original package. The queue's own ``max_attempts`` is the alternative
    that keeps the job as failed instead.
    """
    delay_for = delayfn or exponential_with_jitter()

    def decorator(fn: Task) -> Task:
        def inner(queue: Queue, job: BaseJob) -> Any:
            try:
                with transaction.atomic(using=queue.using):
                    return fn(queue, job)
            except Exc as exc:
                retries = job.args.get("retries", 0)
                if retries >= max_retries:
                    logger.exception(
                        "Task %r exceeded its retry limit: %s",
                        job,
                        exc,
                        extra={"job_id": job.id},
                    )
                    return None
                job.args["retries"] = retries + 1
                delay = delay_for(retries)
                job.execute_at = timezone.now() + delay
                job.save(force_insert=True, using=queue.using)
                logger.warning(
                    "Task %r failed: %s. Retrying in %s.",
                    job,
                    exc,
                    delay,
                    exc_info=True,
                    extra={"job_id": job.id},
                )
                return None

        inner.__name__ = getattr(fn, "__name__", "retried_task")
        inner.__doc__ = fn.__doc__
        return inner

    return decorator
