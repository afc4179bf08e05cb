"""``dpq_worker --processes P``: a supervisor, its worker processes, and how each one dies."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpq.models import Job, JobStart
from tests.conftest import wait_until
from tests.queues import worker_queue
from tests.testapp.models import Effect
from tests.worker.conftest import (
    HOST,
    assert_each_job_ran_once_or_is_back,
    fetch,
    storm,
)

WORKER_QUEUE = "tests.queues.worker_queue"


def children_of(pid: int) -> set[int]:
    """Pids of the live (not zombie) processes whose parent is ``pid``."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent_and_state(int(entry.name))[0] == pid:
            children.add(int(entry.name))
    return children


def _parent_and_state(pid: int) -> tuple[int | None, str | None]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None, None
    state, parent = stat.rsplit(")", 1)[1].split()[:2]
    if state == "Z":
        return None, None
    return int(parent), state


def exited(pid: int) -> bool:
    """True once ``pid`` is gone or a zombie: it ran its last instruction."""
    return _parent_and_state(pid) == (None, None)


def worker_pids(supervisor) -> set[int]:
    """Pids in the ``dpq:<queue>:<host>:<pid>:t1`` names of the supervisor's children."""
    rows = fetch(
        "SELECT application_name FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE %s",
        [f"dpq:default:{HOST}:%:t1"],
    )
    pids = {int(name.split(":")[-2]) for (name,) in rows}
    return pids & children_of(supervisor.pid)


def no_worker_connections() -> bool:
    return not fetch(
        "SELECT 1 FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE 'dpq:%%'"
    )


@pytest.fixture
def supervisor(worker_process) -> Iterator:
    """Factory: ``supervisor("--burst", threads=2)`` runs ``dpq_worker --processes 2``.

    At teardown the process group is killed and, before the tables are emptied, every
    worker connection of the test database is waited out: the children's names carry their
    own pids, which the worker_process fixture does not look for.
    """
    started = []

    def start(*args: str, threads: int = 2, processes: int = 2):
        process = worker_process(
            "--processes", str(processes), *args, queue=WORKER_QUEUE, threads=threads
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
    wait_until(no_worker_connections, 30)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_processes_drain_the_queue_and_burst_exits_0(supervisor):
    ids = worker_queue.enqueue_many(
        [("slow_record", {"seconds": 0.02}) for _ in range(400)]
    )
    process = supervisor("--burst")

    pids = wait_until(lambda: len(worker_pids(process)) == 2 and worker_pids(process))
    code = process.wait_for_exit(120)

    assert code == 0, process.log[-3000:]
    assert process.pid not in pids
    assert "2 worker processes of 2 threads" in process.log
    for pid in pids:
        assert f"Worker process {pid} exited with code 0" in process.log
    effects = list(Effect.objects.values_list("job_id", flat=True))
    assert sorted(effects) == sorted(ids)
    assert not Job.objects.exists()
    assert not JobStart.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_process_is_reported_and_replaced_and_the_queue_drains(
    supervisor,
):
    ids = worker_queue.enqueue_many(
        [("slow_record", {"seconds": 0.1}) for _ in range(80)]
    )
    process = supervisor()
    first = wait_until(lambda: len(worker_pids(process)) == 2 and worker_pids(process))
    wait_until(Effect.objects.exists)

    victim = min(first)
    os.kill(victim, signal.SIGKILL)

    process.wait_for_log(f"Worker process {victim} was killed by SIGKILL")
    assert f"Worker process {victim} was killed by SIGKILL; starting another" in (
        process.log
    )
    wait_until(lambda: worker_pids(process) - first)
    wait_until(lambda: Effect.objects.count() == len(ids), 60)
    wait_until(lambda: not JobStart.objects.exists())
    assert set(Effect.objects.values_list("job_id", flat=True)) == set(ids)
    assert not Job.objects.exists()
    assert process.alive()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_every_process_finish_its_jobs_and_leaves_none_behind(
    supervisor, tmp_path
):
    release = tmp_path / "release"
    started = [tmp_path / f"started-{n}" for n in range(4)]
    held = worker_queue.enqueue_many(
        [
            ("wait_for_file", {"started": str(path), "release": str(release)})
            for path in started
        ]
    )
    process = supervisor()
    # Four jobs run at once on 2 x 2 threads: both processes are busy.
    wait_until(lambda: all(path.exists() for path in started))

    process.send(signal.SIGTERM)
    process.wait_for_log("Received SIGTERM: asking 2 worker processes to stop")
    process.wait_for_log("Received SIGTERM: no new jobs are claimed", count=2)
    later = worker_queue.enqueue_many([("record", {}) for _ in range(3)])
    release.touch()
    code = process.wait_for_exit(60)

    assert code == 0, process.log[-3000:]
    assert set(Effect.objects.values_list("job_id", flat=True)) == set(held)
    assert set(Job.objects.values_list("id", "attempts")) == {(i, 0) for i in later}
    assert process.log.count("exited with code 0") == 2
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_processes_stop_by_themselves_when_the_supervisor_is_killed(
    supervisor,
):
    process = supervisor()
    pids = wait_until(lambda: len(worker_pids(process)) == 2 and worker_pids(process))

    os.kill(process.pid, signal.SIGKILL)
    process.popen.wait(30)

    wait_until(lambda: all(exited(pid) for pid in pids), 30)
    assert (
        process.log.count(
            "The supervisor process is gone; stopping this worker process"
        )
        == 2
    )
    assert process.log.count("dpq worker stopped after") == 2
    wait_until(no_worker_connections, 30)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_running_jobs_start_record_names_its_worker_process(supervisor, tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    job = worker_queue.enqueue(
        "wait_for_file", {"started": str(started), "release": str(release)}
    )
    # One thread per child: every start runs alone, so each is recorded before it runs.
    process = supervisor(threads=1)
    wait_until(started.exists)

    worker = JobStart.objects.get(job_id=job.id).worker
    release.touch()

    names = {f"{socket.gethostname()}:{pid}"[:63] for pid in worker_pids(process)}
    assert worker in names, (worker, names, process.pid)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_poison_job_fails_after_crash_limit_solo_starts_and_the_rest_run_once(
    supervisor,
):
    neighbours = [("slow_record", {"seconds": 0.4}) for _ in range(6)]
    ids = worker_queue.enqueue_many(
        [*neighbours, ("kill_process", {}), *neighbours, *neighbours]
    )
    poison_id = ids[6]
    process = supervisor("--delay", "0.2")

    wait_until(
        lambda: Job.objects.filter(id=poison_id, failed_at__isnull=False).exists(), 90
    )
    wait_until(lambda: Effect.objects.count() == len(ids) - 1, 60)

    poison = Job.objects.get()
    assert poison.id == poison_id
    assert "the worker died 3 times while running this job alone" in poison.last_error
    assert set(Effect.objects.values_list("job_id", flat=True)) == set(ids) - {
        poison_id
    }
    # One death beside other jobs, then crash_limit deaths alone.
    assert process.log.count("was killed by SIGKILL; starting another") == 1 + 3
    assert not JobStart.objects.exists()
    assert process.alive()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_that_does_not_stop_within_grace_is_killed(supervisor):
    job = worker_queue.enqueue("freeze_process")
    process = supervisor("--grace", "1", threads=1)
    frozen = wait_until(
        lambda: next(
            (p for p in children_of(process.pid) if _parent_and_state(p)[1] == "T"),
            None,
        )
    )

    process.send(signal.SIGTERM)
    # --grace plus a few seconds, on a noisy machine.
    code = process.wait_for_exit(1 + 15)

    assert code == 1, process.log[-3000:]
    assert f"Worker process {frozen} was killed by SIGKILL" in process.log
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)
    wait_until(no_worker_connections, 30)
    assert list(Job.objects.values_list("id", "attempts")) == [(job.id, 0)]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", range(3))
def test_a_storm_of_stop_signals_to_the_supervisor_ends_in_a_clean_exit(
    supervisor, seed
):
    ids = worker_queue.enqueue_many(
        [("slow_record", {"seconds": 0.005}) for _ in range(2000)]
    )
    process = supervisor("--grace", "3")
    wait_until(lambda: len(worker_pids(process)) == 2)
    wait_until(Effect.objects.exists)

    sent = storm(process, seed, stop_text="dpq supervisor stopped")
    code = process.wait_for_exit(3 + 15)

    assert sent >= 1
    assert code in (0, 1), process.log[-3000:]
    assert "Traceback" not in process.log
    assert "Logging error" not in process.log
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)
    wait_until(no_worker_connections, 30)
    assert_each_job_ran_once_or_is_back(ids)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_stop_signal_while_a_restart_waits_starts_no_more_worker_processes(
    supervisor,
):
    # Each worker process that claims it dies at once (the task calls sys.exit()).
    worker_queue.enqueue("raise_system_exit")
    process = supervisor(threads=1)
    process.wait_for_log("Worker processes die quickly; waiting")

    process.send(signal.SIGTERM)
    process.wait_for_log("Received SIGTERM")
    started = process.log.count("dpq worker started")
    code = process.wait_for_exit(30)

    assert code in (0, 1), process.log[-3000:]
    assert process.log.count("dpq worker started") == started
    assert "dpq supervisor stopped" in process.log
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)
