"""The shop's tasks, written for django-postgres-queue 1.0.0: ``fn(queue, job)``."""

from __future__ import annotations

from django.core import mail
from django.db import transaction

from shop.models import Order


def send_confirmation(queue, job):
    order = Order.objects.get(pk=job.args["order_id"])
    mail.send_mail("Your order", "Thanks!", "shop@example.com", [order.email])
    order.confirmed = True
    order.save()
    return order.pk


def ship(queue, job):
    order = Order.objects.get(pk=job.args["order_id"])
    order.shipped = True
    order.save()
    # Tell the warehouse once the order is saved; its client is down today.
    transaction.on_commit(lambda: 1 / 0)
