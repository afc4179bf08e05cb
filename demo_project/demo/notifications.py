"""A Django ``@task``, run by dpq through ``dpq.tasks.DpqBackend`` (the TASKS setting).

``send_receipt.enqueue(...)`` adds a dpq job in the caller's transaction;
``manage.py dpq_worker --backend default`` runs it, and ``send_receipt.get_result(id)``
reports how it went. On Django 6 the framework is ``django.tasks``; on Django 5.2 it is the
``django_tasks`` backport.
"""

from __future__ import annotations

import logging

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task

from demo.models import Account

logger = logging.getLogger(__name__)


@task(takes_context=True)
def send_receipt(context, account: str) -> dict:
    """Pretend to mail an account's balance; the return value is kept as the task's result."""
    balance = Account.objects.get(name=account).balance
    logger.info(
        "Receipt for %s: balance %s (task %s, attempt %s)",
        account,
        balance,
        context.task_result.id,
        context.attempt,
    )
    return {"account": account, "balance": balance}
