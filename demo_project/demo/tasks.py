"""The demo's tasks. A task is a plain function ``fn(queue, job)``; ``job.args`` is its JSON value.

Each one shows one thing: ``transfer`` atomicity, ``flaky`` the queue's retries, ``call_service``
the ``@retry`` decorator, ``heartbeat`` the ``@repeat`` decorator, ``sleep`` and
``build_report`` jobs long enough to be seen running in the dashboard; ``build_report`` is also
scheduled every minute (demo/queue.py).
"""

from __future__ import annotations

import datetime
import logging
import random
import time
from typing import TYPE_CHECKING

from django.db.models import Sum

from demo.models import Account, Report
from dpq.decorators import repeat, retry

if TYPE_CHECKING:
    from dpq.models import BaseJob
    from dpq.queue import Queue

logger = logging.getLogger(__name__)


class InsufficientFundsError(Exception):
    pass


def transfer(queue: Queue, job: BaseJob) -> None:
    """Move ``amount`` from one account to another: ``{"from": ..., "to": ..., "amount": ...}``.

    The task runs inside the transaction that claims the job, so both balances and the job's
    removal commit together. An overdraft raises after both rows were written: the writes
    are rolled back with the run, and the job is retried, then kept as failed.
    """
    source, target, amount = job.args["from"], job.args["to"], job.args["amount"]
    # Lock both rows in one order (by name) so that two opposite transfers cannot deadlock.
    accounts = {
        account.name: account
        for account in Account.objects.select_for_update()
        .filter(name__in=[source, target])
        .order_by("name")
    }
    accounts[target].balance += amount
    accounts[target].save(update_fields=["balance"])
    accounts[source].balance -= amount
    accounts[source].save(update_fields=["balance"])
    if accounts[source].balance < 0:
        raise InsufficientFundsError(
            f"{source} has {accounts[source].balance + amount}, cannot send {amount} to {target}"
        )


def sleep(queue: Queue, job: BaseJob) -> None:
    """Sleep ``{"seconds": n}``: stands for slow work, and is seen as running meanwhile."""
    time.sleep(job.args["seconds"])


def flaky(queue: Queue, job: BaseJob) -> None:
    """Fail on the first two runs, succeed on the third.

    ``job.attempts`` counts the runs that raised. The queue's retry policy for this task
    (demo/queue.py) waits a few seconds between runs; meanwhile the dashboard shows the job
    delayed, with its attempts and last error.
    """
    if job.attempts < 2:
        raise ConnectionError(
            f"the stock service did not answer (run {job.attempts + 1} of 3)"
        )
    logger.info("Job %s: the stock service answered on run 3", job.id)


def _three_seconds(retries: int) -> datetime.timedelta:
    return datetime.timedelta(seconds=3)


@retry(max_retries=3, delayfn=_three_seconds, Exc=TimeoutError)
def call_service(queue: Queue, job: BaseJob) -> None:
    """Call a service that times out half the time.

    ``@retry`` catches the TimeoutError and enqueues the job again 3 seconds later, counting
    in ``job.args["retries"]``. After 3 retries it logs the error and drops the job: unlike the
    queue's own ``max_attempts`` (see ``flaky``), nothing is kept as failed.
    """
    if random.random() < 0.5:
        raise TimeoutError(f"{job.args['url']} did not answer within 1 s")


@repeat(datetime.timedelta(seconds=15))
def heartbeat(queue: Queue, job: BaseJob) -> None:
    """Log the total of all accounts every 15 seconds.

    ``@repeat`` enqueues the next run in the same transaction as this one; enqueue the first
    run yourself. The total never changes, however many transfers run or fail: each one
    commits whole or not at all.
    """
    total = Account.objects.aggregate(total=Sum("balance"))["total"]
    logger.info("Heartbeat: the accounts hold %s in all", total)


def build_report(queue: Queue, job: BaseJob) -> None:
    """Take ``{"seconds": n}`` to add up the accounts, then store a Report (reports queue)."""
    time.sleep(job.args.get("seconds", 5))
    totals = Account.objects.aggregate(total=Sum("balance"))
    Report.objects.create(accounts=Account.objects.count(), total=totals["total"] or 0)
