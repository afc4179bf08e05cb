"""The shop's own tests, written for django-postgres-queue 1.0.0: run jobs in a TestCase."""

from __future__ import annotations

from django.core import mail
from django.test import TestCase, TransactionTestCase

from dpq.models import Job

from shop.management.commands.worker import Command
from shop.models import Order
from shop.queue import place_order, queue


class OrderTests(TestCase):
    def test_placing_an_order_queues_its_confirmation(self):
        order = place_order("a@example.com")

        job = Job.objects.get()
        self.assertEqual(job.task, "send_confirmation")
        self.assertEqual(job.args, {"order_id": order.pk})

    def test_the_confirmation_job_sends_the_mail(self):
        order = place_order("a@example.com")

        job, retval, exc = queue.run_once()

        self.assertIsNone(exc)
        self.assertEqual(retval, order.pk)
        self.assertEqual(mail.outbox[0].to, ["a@example.com"])
        order.refresh_from_db()
        self.assertTrue(order.confirmed)
        self.assertFalse(Job.objects.exists())

    def test_the_worker_command_runs_every_queued_job(self):
        for n in range(3):
            place_order("customer%s@example.com" % n)
        worker = Command()
        worker._shutdown = False
        worker._in_task = False

        worker.run_available_tasks()

        self.assertEqual(len(mail.outbox), 3)
        self.assertEqual(Order.objects.filter(confirmed=True).count(), 3)
        self.assertFalse(Job.objects.exists())

    def test_a_failing_job_stays_in_the_queue(self):
        queue.enqueue("send_confirmation", {"order_id": 404})

        job, retval, exc = queue.run_once()

        self.assertIsInstance(exc, Order.DoesNotExist)
        self.assertTrue(Job.objects.filter(pk=job.pk).exists())
        self.assertEqual(mail.outbox, [])


class ShippingTests(TransactionTestCase):
    def test_a_failing_on_commit_callback_is_the_jobs_exception(self):
        order = Order.objects.create(email="a@example.com")
        queue.enqueue("ship", {"order_id": order.pk})

        job, retval, exc = queue.run_once()

        self.assertEqual(job.args, {"order_id": order.pk})
        self.assertIsNone(retval)
        self.assertIsInstance(exc, ZeroDivisionError)
        order.refresh_from_db()
        self.assertTrue(order.shipped)
