"""The demo's own tests, as a project using dpq writes them: dpq.testing runs the jobs that
the code under test enqueued, inside the TestCase's transaction.

Run them with ``python manage.py test demo`` (tests/demo/test_demo_tests.py does).
"""

from __future__ import annotations

from django.test import TestCase

from demo.models import Account
from demo.queue import queue
from demo.tasks import InsufficientFundsError
from dpq import testing
from dpq.models import Job


class TransferTests(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        Account.objects.create(name="alice", balance=100)
        Account.objects.create(name="bob", balance=0)

    def balances(self) -> dict[str, int]:
        return dict(Account.objects.values_list("name", "balance"))

    def test_enqueueing_a_transfer_is_one_query(self) -> None:
        with self.assertNumQueries(1):
            queue.enqueue("transfer", {"from": "alice", "to": "bob", "amount": 30})

        testing.assert_enqueued(
            "transfer", args={"from": "alice", "to": "bob", "amount": 30}, priority=0
        )

    def test_a_transfer_moves_the_money(self) -> None:
        queue.enqueue("transfer", {"from": "alice", "to": "bob", "amount": 30})

        [outcome] = testing.run_jobs(queue)

        self.assertTrue(outcome.succeeded, outcome.traceback)
        self.assertEqual(self.balances(), {"alice": 70, "bob": 30})
        self.assertFalse(Job.objects.exists())

    def test_an_overdraft_fails_and_its_writes_are_rolled_back(self) -> None:
        queue.enqueue("transfer", {"from": "alice", "to": "bob", "amount": 1000})

        [outcome] = testing.run_jobs(queue)

        self.assertIsInstance(outcome.exc, InsufficientFundsError)
        self.assertIn("alice has 100, cannot send 1000 to bob", outcome.traceback)
        self.assertEqual(self.balances(), {"alice": 100, "bob": 0})
        # Put back for a retry, a few seconds later.
        testing.assert_enqueued("transfer", count=1)
        self.assertEqual(Job.objects.get().attempts, 1)


class RetryAndRepeatTests(TestCase):
    def test_flaky_succeeds_on_its_third_run(self) -> None:
        queue.enqueue("flaky")

        runs = [testing.run_jobs(queue, include_delayed=True) for _ in range(3)]

        self.assertEqual(
            [[o.succeeded for o in outcomes] for outcomes in runs],
            [[False], [False], [True]],
        )
        self.assertIsInstance(runs[0][0].exc, ConnectionError)

    def test_heartbeat_enqueues_its_next_run(self) -> None:
        queue.enqueue("heartbeat")

        [outcome] = testing.run_jobs(queue)

        self.assertTrue(outcome.succeeded)
        [following] = testing.assert_enqueued("heartbeat", count=1)
        self.assertGreater(following.execute_at, outcome.job.execute_at)
