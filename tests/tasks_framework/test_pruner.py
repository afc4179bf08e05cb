"""A worker's background prune of expired task results (OPTION prune_interval)."""

from __future__ import annotations

import datetime
import signal
import threading

import pytest
from django.db import connection
from django.utils import timezone

from dpq.models import TaskResult as ResultRow
from dpq.tasks import DpqBackend
from dpq.tasks import pruner as pruner_module
from dpq.tasks.compat import InvalidTaskBackend
from tests.conftest import wait_until
from tests.tasks_framework import tasks

OLD = datetime.timedelta(days=8)


def finished_results(backend, run, old: int) -> tuple[set[int], set[int]]:
    """``old`` expired results (copies of one, in SQL), a failed job's and a fresh one."""
    done = tasks.noop.enqueue()
    run()
    failed = tasks.fails.enqueue()
    run()
    run()
    ResultRow.objects.update(finished_at=timezone.now() - OLD)
    columns = [
        f.column for f in ResultRow._meta.concrete_fields if f.column != "job_id"
    ]
    listed = ", ".join(columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO dpq_taskresult (job_id, {listed}) "
            f"SELECT 1000000000 + g, {listed} FROM dpq_taskresult, generate_series(1, %s) g "
            "WHERE job_id = %s",
            [old - 1, int(done.id)],
        )
    fresh = tasks.noop.enqueue()
    run()
    return {int(failed.id), int(fresh.id)}, {int(done.id)}


@pytest.mark.django_db(transaction=True)
def test_the_background_prune_deletes_expired_results_in_batches(run, monkeypatch):
    monkeypatch.setattr(pruner_module, "PRUNE_BATCH", 100)
    backend = DpqBackend(
        "default",
        {"QUEUES": ["default", "emails"], "OPTIONS": {"prune_interval": 0.2}},
    )
    kept, _ = finished_results(backend, run, old=350)
    assert ResultRow.objects.count() == 352
    stopping = threading.Event()
    thread = backend.queue("default").background_thread(stopping)
    thread.start()
    try:
        assert wait_until(lambda: ResultRow.objects.count() == 2, 30)
    finally:
        stopping.set()
        thread.join(10)
    assert not thread.is_alive()
    assert set(ResultRow.objects.values_list("job_id", flat=True)) == kept


def test_the_background_prune_can_be_turned_off():
    stopping = threading.Event()
    for options in ({"prune_interval": None}, {"result_retention": None}):
        backend = DpqBackend("default", {"OPTIONS": options})
        assert backend.queue().background_thread(stopping) is None
    on = DpqBackend("default", {"OPTIONS": {"prune_interval": datetime.timedelta(1)}})
    assert on.prune_interval == 86400.0
    for bad in (0, -5, "300", True):
        with pytest.raises(InvalidTaskBackend, match="prune_interval"):
            DpqBackend("default", {"OPTIONS": {"prune_interval": bad}})


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_prunes_while_it_runs_tasks(worker_process, backend, run):
    kept, pruned = finished_results(backend, run, old=1200)
    worker = worker_process(
        "--backend",
        "default",
        queue=None,
        threads=2,
        env={"DPQ_TEST_PRUNE_INTERVAL": "0.5"},
    )
    assert wait_until(lambda: ResultRow.objects.count() <= 2, 60), worker.log[-3000:]
    # The worker's own work goes on beside it.
    later = tasks.add.enqueue(1, 2)
    assert wait_until(lambda: backend.get_result(later.id).is_finished, 30)
    worker.send(signal.SIGTERM)
    assert worker.wait_for_exit() == 0, worker.log[-3000:]

    assert kept | {int(later.id)} == set(
        ResultRow.objects.values_list("job_id", flat=True)
    )
    assert not pruned & set(ResultRow.objects.values_list("job_id", flat=True))
    assert "Pruned 1200 result(s) of tasks backend 'default'" in worker.log
