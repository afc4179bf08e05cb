"""A user's own Django tests that run jobs (run by tests/test_user_suites.py with manage.py test)."""

from __future__ import annotations

from django.db import connection
from django.test import TestCase, TransactionTestCase

from dpq import testing
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


def place_order(note: str) -> None:
    """The code under test: one row and one job (two queries)."""
    Effect.objects.create(job_id=0, note=note)
    queue.enqueue("record", {"note": note}, priority=5)


class UseDpqTestingInATestCase(TestCase):
    def test_run_jobs_runs_what_the_code_enqueued(self) -> None:
        with self.assertNumQueries(2):
            place_order("order 1")

        [outcome] = testing.run_jobs(queue)

        self.assertTrue(outcome.succeeded)
        self.assertEqual(outcome.retval, outcome.job.id)
        self.assertTrue(Effect.objects.filter(job_id=outcome.job.id).exists())
        self.assertEqual(committed_start_records(), 0)

    def test_run_jobs_reports_a_failure_with_its_traceback(self) -> None:
        queue.enqueue("fail")

        [outcome] = testing.run_jobs(queue)

        self.assertIsInstance(outcome.exc, ValueError)
        self.assertIn("ValueError: always fails", outcome.traceback)

    def test_assert_enqueued_checks_the_job(self) -> None:
        place_order("order 2")

        testing.assert_enqueued(
            "record", args={"note": "order 2"}, queue="default", priority=5
        )
        with self.assertRaisesMessage(AssertionError, "args {'note': 'order 2'}"):
            testing.assert_enqueued("record", args={"note": "order 3"})
