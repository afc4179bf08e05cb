"""The jobs the demo enqueues: a mix at start, then a trickle, both through the public API."""

from __future__ import annotations

import datetime
import random

from django.db import transaction
from django.utils import timezone

from demo.models import Account
from demo.notifications import send_receipt
from demo.queue import queue, reports_queue
from dpq.models import Job

ACCOUNTS = {"alice": 1000, "bob": 1000, "carol": 1000}
SHOWCASE = 20


def create_accounts() -> None:
    """Create the accounts the transfers move money between (kept across runs)."""
    for name, balance in ACCOUNTS.items():
        Account.objects.get_or_create(name=name, defaults={"balance": balance})


def enqueue_mix(rng: random.Random) -> int:
    """Enqueue the starting mix of jobs; return how many."""
    now = timezone.now()
    names = list(ACCOUNTS)
    # Enqueued in one transaction: either all of them exist or none (and one NOTIFY per
    # queue, sent when it commits).
    with transaction.atomic():
        jobs = []
        # Quick and slow jobs, seen running for a few seconds.
        for seconds in (0, 0, 1, 3, 5, 8):
            jobs.append(queue.enqueue("sleep", {"seconds": seconds}))
        # Delayed jobs: they wait in the dashboard's "delayed" list until they are due.
        for minutes in (0.5, 1, 2, 5):
            at = now + datetime.timedelta(minutes=minutes)
            jobs.append(queue.enqueue("sleep", {"seconds": 2}, execute_at=at))
        # The jobs that show retries go first (higher priority), ahead of the backlog below.
        # An overdraft, which fails on every run: kept as failed after 3 attempts, with
        # its traceback. Its writes are rolled back each time: the balances never change.
        overdraft = {"from": "alice", "to": "bob", "amount": 1_000_000}
        jobs.append(queue.enqueue("transfer", overdraft, priority=SHOWCASE))
        # Fails twice, then succeeds (the queue's retry policy for "flaky").
        jobs.append(queue.enqueue("flaky", {}, priority=SHOWCASE))
        # @retry: a service that times out half the time.
        for n in range(3):
            url = f"https://mirror{n}.example/status"
            jobs.append(queue.enqueue("call_service", {"url": url}, priority=SHOWCASE))
        # @repeat: start one heartbeat chain. A chain left by an earlier run is dropped
        # first: @repeat schedules each run `delay` after the previous one was due, so
        # an old chain would catch up on the time the demo was stopped, run after run.
        # Django @task tasks (demo/notifications.py), in the same transaction.
        for name in names:
            jobs.append(send_receipt.enqueue(name))
        old = Job.objects.filter(queue=queue.name, task="heartbeat")
        Job.objects.delete_jobs(old.values_list("id", flat=True))
        jobs.append(queue.enqueue("heartbeat", {}, priority=SHOWCASE))
        # A few hundred small jobs at different priorities, in both queues, each batch
        # added with one INSERT. Higher priorities run first.
        transfers = [
            {
                "task": "transfer",
                "args": {"from": source, "to": target, "amount": rng.randint(1, 20)},
                "priority": rng.choice((0, 0, 0, 5, 10)),
            }
            for source, target in (rng.sample(names, 2) for _ in range(150))
        ]
        sleeps = [
            {
                "task": "sleep",
                "args": {"seconds": round(rng.uniform(0.2, 1.0), 1)},
                "priority": rng.choice((0, 5, 10)),
            }
            for _ in range(100)
        ]
        reports = [
            {
                "task": "build_report",
                "args": {"seconds": round(rng.uniform(0.5, 2), 1)},
                "priority": rng.choice((0, 10)),
            }
            for _ in range(50)
        ]
        ids = queue.enqueue_many(transfers + sleeps)
        ids += reports_queue.enqueue_many(reports)
    return len(jobs) + len(ids)


def enqueue_trickle(rng: random.Random) -> int:
    """Enqueue a second's worth of new work; return how many jobs."""
    names = list(ACCOUNTS)
    items: list[tuple | dict] = []
    for _ in range(rng.randint(1, 3)):
        source, target = rng.sample(names, 2)
        items.append(
            ("transfer", {"from": source, "to": target, "amount": rng.randint(1, 10)})
        )
    if rng.random() < 0.3:
        items.append(("sleep", {"seconds": rng.randint(2, 6)}))
    count = len(queue.enqueue_many(items))
    if rng.random() < 0.1:
        reports_queue.enqueue("build_report", {"seconds": rng.randint(2, 5)})
        count += 1
    return count
