"""Workers that die: kill -9 at random moments, and a job that kills its own worker."""

from __future__ import annotations

import random
import signal

import pytest

from dpq.models import Job, JobStart
from tests.conftest import wait_until
from tests.queues import queue, worker_queue
from tests.testapp.models import Effect
from tests.worker.conftest import claimed_when_the_worker_died

JOBS = 4000
KILLS = 20


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_kill_9_while_draining_commits_each_job_once_and_loses_none(worker_process):
    ids = queue.enqueue_many([("record", {}) for _ in range(JOBS)])
    rng = random.Random()

    for _ in range(KILLS):
        before = Effect.objects.count()
        assert before < JOBS, "the queue drained before every kill was made: add jobs"
        worker = worker_process(threads=4)
        # A random moment while it drains: after it has committed a few to a few dozen jobs.
        target = min(JOBS, before + rng.randint(1, 40))
        wait_until(
            lambda w=worker, t=target: Effect.objects.count() >= t or not w.alive(), 60
        )
        assert worker.alive(), worker.log[-3000:]
        worker.kill()
        assert worker.popen.returncode == -signal.SIGKILL

    worker = worker_process(threads=4)
    wait_until(lambda: not Job.objects.filter(failed_at__isnull=True).exists(), 120)

    effects = list(Effect.objects.values_list("job_id", flat=True))
    failed = dict(Job.objects.values_list("id", "last_error"))
    assert len(effects) == len(set(effects))
    assert set(effects).isdisjoint(failed)
    assert set(effects) | set(failed) == set(ids)
    # A job fails only by dying alone crash_limit times (a kill that hit it three times).
    for last_error in failed.values():
        assert "the worker died 3 times while running this job alone" in last_error
    assert not JobStart.objects.exists()
    assert worker.alive()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_poison_job_fails_after_crash_limit_solo_starts_and_spares_its_neighbours(
    worker_process,
):
    # Jobs run in id order: the poison job is claimed while the slow jobs before it still run.
    neighbours = [("slow_record", {"seconds": 0.4}) for _ in range(6)]
    ids = worker_queue.enqueue_many(
        [*neighbours, ("kill_process", {}), *neighbours, *neighbours]
    )
    poison_id = ids[6]
    neighbour_ids = set(ids) - {poison_id}

    deaths = 0
    beside_poison: set[int] = set()
    while deaths < 10:
        worker = worker_process(queue="tests.queues.worker_queue", threads=4)
        wait_until(
            lambda w=worker: (
                not w.alive()
                or Job.objects.filter(id=poison_id, failed_at__isnull=False).exists()
            ),
            60,
        )
        if worker.alive():
            break
        assert worker.popen.returncode == -signal.SIGKILL, worker.log[-3000:]
        deaths += 1
        if deaths == 1:
            beside_poison = claimed_when_the_worker_died() - {poison_id}
    wait_until(lambda: Effect.objects.count() == len(neighbour_ids), 60)

    assert beside_poison, "no job ran beside the poison job: nothing was tested"
    poison = Job.objects.get()
    assert poison.id == poison_id
    assert poison.failed_at is not None
    assert "the worker died 3 times while running this job alone" in poison.last_error
    # One death beside its neighbours, then crash_limit deaths alone.
    assert deaths == 1 + 3
    assert set(Effect.objects.values_list("job_id", flat=True)) == neighbour_ids
    assert not JobStart.objects.exists()
