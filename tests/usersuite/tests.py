"""A user's own Django tests that run jobs (run by tests/test_user_suites.py with manage.py test)."""

from __future__ import annotations

from django.db import connection
from django.test import TestCase, TransactionTestCase

from dpq.models import Job
from dpq.queue import AtLeastOnceQueue
from tests import tasks
from tests.testapp.models import Effect

queue = AtLeastOnceQueue(tasks=tasks.TASKS, notify_channel="dpq-user-suite")


def committed_start_records() -> int:
    """dpq_jobstart rows another session sees: what outlived (or escaped) the test's transaction."""
    raw = connection.get_new_connection(connection.get_connection_params())
    try:
        with raw.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM dpq_jobstart")
            return cursor.fetchone()[0]
    finally:
        raw.close()


class RunJobsInATestCase(TestCase):
    def test_run_once_runs_the_enqueued_job(self) -> None:
        job = queue.enqueue("record", {"note": "in a TestCase"})

        ran, retval, exc = queue.run_once()

        self.assertEqual((ran.id, retval, exc), (job.id, job.id, None))
        self.assertTrue(Effect.objects.filter(job_id=job.id).exists())
        self.assertFalse(Job.objects.exists())
        self.assertEqual(committed_start_records(), 0)

    def test_a_failing_job_is_put_back(self) -> None:
        job = queue.enqueue("fail")

        ran, _, exc = queue.run_once()

        self.assertEqual(ran.id, job.id)
        self.assertIsInstance(exc, ValueError)
        self.assertEqual(Job.objects.get(id=job.id).attempts, 1)
        self.assertEqual(committed_start_records(), 0)


class RunJobsInATransactionTestCase(TransactionTestCase):
    def test_run_once_runs_the_enqueued_job(self) -> None:
        job = queue.enqueue("record")

        ran, _, exc = queue.run_once()

        self.assertEqual((ran.id, exc), (job.id, None))
        self.assertEqual(committed_start_records(), 0)
