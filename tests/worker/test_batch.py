"""``dpq_worker --batch K``: many jobs per transaction, each in its own savepoint."""

from __future__ import annotations

import datetime
import re
import signal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from dpq.models import Job, JobStart
from dpq.options import next_batch_size
from tests.conftest import wait_until
from tests.queues import at_most_once_queue, batch_queue
from tests.testapp.models import Effect
from tests.worker.conftest import claimed_when_the_worker_died

BATCH_QUEUE = "tests.queues.batch_queue"


def effect_ids() -> set[int]:
    return set(Effect.objects.values_list("job_id", flat=True))


def alone_ids(log: str) -> set[int]:
    """Ids of the jobs the worker's log says it ran alone as suspects."""
    return {int(n) for n in re.findall(r"Job (\d+) \(\w+\) was running when", log)}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_batch_drain_runs_each_job_once_and_leaves_no_rows(worker_process):
    ids = batch_queue.enqueue_many([("record", {}) for _ in range(2000)])
    worker = worker_process("--batch", "50", "--burst", queue=BATCH_QUEUE, threads=2)

    assert worker.wait_for_exit(120) == 0, worker.log[-3000:]
    assert "batches of up to 50 jobs" in worker.log
    effects = list(Effect.objects.values_list("job_id", flat=True))
    assert len(effects) == 2000
    assert set(effects) == set(ids)
    assert not Job.objects.exists()
    assert not JobStart.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_raising_job_is_rolled_back_and_recorded_in_place_while_the_batch_commits(
    worker_process,
):
    before, failing, after = batch_queue.enqueue_many(
        [("record", {}), ("record_then_fail", {}), ("record", {})]
    )
    enqueued_at = timezone.now()
    worker = worker_process("--batch", "10", "--burst", queue=BATCH_QUEUE, threads=1)

    assert worker.wait_for_exit(60) == 0, worker.log
    assert effect_ids() == {before, after}
    job = Job.objects.get()
    assert job.id == failing
    assert (job.attempts, job.failed_at) == (1, None)
    assert "Traceback" in job.last_error
    assert f"RuntimeError: failing on purpose (job {failing})" in job.last_error
    # FixedBackoff(60): well after the run, not merely after the enqueue.
    assert job.execute_at > enqueued_at + datetime.timedelta(seconds=30)
    assert not JobStart.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_on_commit_of_a_raising_task_never_runs(worker_process, tmp_path):
    failed_path, ok_path = tmp_path / "failed", tmp_path / "ok"
    failing, ok = batch_queue.enqueue_many(
        [
            ("record_on_commit", {"path": str(failed_path), "fail": True}),
            ("record_on_commit", {"path": str(ok_path)}),
        ]
    )
    worker = worker_process("--batch", "10", "--burst", queue=BATCH_QUEUE, threads=1)

    assert worker.wait_for_exit(60) == 0, worker.log
    # The batch committed and ran its callbacks: only the raising task's is missing.
    assert ok_path.exists()
    assert not failed_path.exists()
    assert effect_ids() == {ok}
    assert Job.objects.get().id == failing


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_on_commit_of_a_task_runs_after_the_batch_commits(worker_process, tmp_path):
    paths = [tmp_path / f"callback-{n}" for n in range(3)]
    ids = batch_queue.enqueue_many(
        [("record_on_commit", {"path": str(path)}) for path in paths]
    )
    worker = worker_process("--batch", "10", "--burst", queue=BATCH_QUEUE, threads=1)

    assert worker.wait_for_exit(60) == 0, worker.log
    # Each callback saw its job's Effect from another connection: it ran after the commit.
    assert [path.read_text() for path in paths] == ["1", "1", "1"]
    assert effect_ids() == set(ids)
    assert not Job.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_task_that_swallows_a_database_error_fails_and_the_batch_commits(
    worker_process,
):
    before, swallowing, after = batch_queue.enqueue_many(
        [("record", {}), ("swallow_db_error", {}), ("record", {})]
    )
    worker = worker_process("--batch", "10", "--burst", queue=BATCH_QUEUE, threads=1)

    assert worker.wait_for_exit(60) == 0, worker.log
    assert effect_ids() == {before, after}
    job = Job.objects.get()
    assert job.id == swallowing
    assert (job.attempts, job.failed_at) == (1, None)
    assert "caught a database error without rolling back to a savepoint" in (
        job.last_error
    )
    assert "error outside a task" not in worker.log
    assert not JobStart.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_kill_9_mid_batch_returns_every_job_and_each_then_runs_alone_once(
    worker_process, tmp_path
):
    started, release = tmp_path / "started", tmp_path / "release"
    held = {"started": str(started), "release": str(release)}
    ids = batch_queue.enqueue_many(
        [
            *[("record", {}) for _ in range(5)],
            ("wait_for_file", held),
            *[("record", {}) for _ in range(5)],
        ]
    )
    worker = worker_process(
        "--batch", "20", "--batch-ms", "60000", queue=BATCH_QUEUE, threads=1
    )
    wait_until(started.exists)
    # The five jobs before the held one have run, uncommitted.
    worker.kill()
    assert worker.popen.returncode == -signal.SIGKILL

    assert not Effect.objects.exists()
    assert set(Job.objects.values_list("id", flat=True)) == set(ids)
    assert not Job.objects.exclude(attempts=0).exists()
    # Nothing was written for the batch's starts: the rows carry the dead claim instead.
    assert not JobStart.objects.exists()
    assert claimed_when_the_worker_died() == set(ids)

    release.touch()
    again = worker_process("--batch", "20", "--burst", queue=BATCH_QUEUE, threads=2)

    assert again.wait_for_exit(60) == 0, again.log
    effects = list(Effect.objects.values_list("job_id", flat=True))
    assert sorted(effects) == sorted(ids)
    assert alone_ids(again.log) == set(ids)
    assert "running it alone" in again.log
    assert not Job.objects.exists()
    assert not JobStart.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_poison_job_in_batches_ends_failed_and_leaves_no_start_record(
    worker_process,
):
    ids = batch_queue.enqueue_many(
        [("record", {}), ("kill_process", {}), ("record", {})]
    )
    poison = ids[1]

    deaths = 0
    while deaths < 6:
        worker = worker_process("--batch", "10", "--burst", queue=BATCH_QUEUE)
        code = worker.wait_for_exit(60)
        if code == 0:
            break
        assert code == -signal.SIGKILL, worker.log[-3000:]
        deaths += 1

    # One death in the batch, then crash_limit deaths alone.
    assert deaths == 1 + 3
    assert effect_ids() == set(ids) - {poison}
    job = Job.objects.get()
    assert job.id == poison
    assert job.failed_at is not None
    assert "the worker died 3 times while running this job alone" in job.last_error
    assert not JobStart.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_batch_ms_commits_a_batch_before_it_is_done(worker_process):
    ids = batch_queue.enqueue_many(
        [("slow_record", {"seconds": 0.2}) for _ in range(100)]
    )
    worker = worker_process(
        "--batch", "100", "--batch-ms", "300", queue=BATCH_QUEUE, threads=1
    )

    # All 100 in one batch would take 20 s and commit at once.
    committed = wait_until(Effect.objects.count, 30)

    assert committed < 50, f"{committed} jobs became visible together"
    assert Job.objects.filter(id__in=ids).exists()
    assert worker.alive()


@pytest.fixture
def put_backs():
    """A count of the rows inserted into dpq_job from now on (a put-back re-inserts its row)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE SEQUENCE test_job_inserts;
            CREATE FUNCTION test_count_job_insert() RETURNS trigger LANGUAGE plpgsql AS
                $$ BEGIN PERFORM nextval('test_job_inserts'); RETURN NULL; END $$;
            CREATE TRIGGER test_count_job_insert AFTER INSERT ON dpq_job
                FOR EACH ROW EXECUTE FUNCTION test_count_job_insert();
            """
        )

    def count() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT last_value, is_called FROM test_job_inserts")
            last_value, is_called = cursor.fetchone()
        return last_value if is_called else 0

    yield count
    with connection.cursor() as cursor:
        cursor.execute(
            """
            DROP TRIGGER test_count_job_insert ON dpq_job;
            DROP FUNCTION test_count_job_insert();
            DROP SEQUENCE test_job_inserts;
            """
        )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_batch_cut_short_by_batch_ms_claims_fewer_jobs_next_time(
    worker_process, put_backs
):
    ids = batch_queue.enqueue_many(
        [("slow_record", {"seconds": 0.05}) for _ in range(40)]
    )
    enqueued = put_backs()
    worker = worker_process(
        "--batch", "40", "--batch-ms", "120", "--burst", queue=BATCH_QUEUE, threads=1
    )

    assert worker.wait_for_exit(60) == 0, worker.log[-3000:]
    assert effect_ids() == set(ids)
    # About 3 jobs fit in 120 ms. Claiming 40 every time puts back the other 37, then 34,
    # ... (about 240 rows); a batch sized by what fitted last time puts back the first
    # batch's 37 and a few more.
    assert put_backs() - enqueued < 80


@pytest.mark.django_db(transaction=True)
def test_batch_on_an_at_most_once_queue_exits_1_and_claims_nothing(worker_process):
    job = at_most_once_queue.enqueue("record")
    worker = worker_process(
        "--batch", "10", "--burst", queue="tests.queues.at_most_once_queue"
    )

    assert worker.wait_for_exit(60) == 1
    assert "CommandError: --batch needs at-least-once delivery" in worker.log
    assert "AtMostOnceQueue" in worker.log
    assert list(Job.objects.values_list("id", "attempts")) == [(job.id, 0)]
    assert not Effect.objects.exists()


def test_batch_on_an_at_most_once_queue_is_a_command_error():
    with pytest.raises(CommandError, match="--batch needs at-least-once delivery"):
        call_command("dpq_worker", "tests.queues.at_most_once_queue", "--batch", "10")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_max_jobs_counts_the_jobs_of_a_batch_not_the_batches(worker_process):
    ids = batch_queue.enqueue_many([("record", {}) for _ in range(40)])
    # One thread: a second one reaching the limit would stop the pool and cut a batch short.
    worker = worker_process(
        "--batch", "10", "--max-jobs", "3", queue=BATCH_QUEUE, threads=1
    )

    assert worker.wait_for_exit(60) == 0, worker.log[-3000:]
    assert Effect.objects.count() == 3
    assert effect_ids() | set(Job.objects.values_list("id", flat=True)) == set(ids)
    assert "stopped after 3 job(s)" in worker.log


def test_the_next_batch_claims_what_ran_in_time_then_grows_back_to_the_limit():
    assert next_batch_size(100, 100, 15, cut_short=True) == 15
    assert next_batch_size(100, 100, 0, cut_short=True) == 1
    assert next_batch_size(15, 100, 15, cut_short=False) == 18
    assert next_batch_size(2, 100, 2, cut_short=False) == 3
    assert next_batch_size(90, 100, 90, cut_short=False) == 100
    sizes = [3]
    while sizes[-1] < 100:
        sizes.append(next_batch_size(sizes[-1], 100, sizes[-1], cut_short=False))
    assert len(sizes) < 25, sizes
