"""Wake-ups and lost connections: LISTEN, terminated sessions, a PostgreSQL restart, timeouts."""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from dpq import driver
from dpq.models import Job
from tests.conftest import wait_until
from tests.queues import queue, worker_queue
from tests.testapp.models import Effect
from tests.worker.conftest import ROOT, fetch

# Every test here runs its worker with a 30 s poll: a job done within this many seconds
# was found through LISTEN/NOTIFY or the due-time wake-up, never by the poll.
WELL_BEFORE_THE_POLL = 15
SERVER_BINARIES = ("initdb", "pg_ctl")


def find_server_bindir() -> Path | None:
    """The directory of initdb and pg_ctl: on PATH, `pg_config --bindir`, or Debian's newest."""
    candidates = []
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            bindir = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(bindir))
    # /usr/lib/postgresql/17/bin before .../9.6/bin: by version, not by string.
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: [int(part) for part in re.findall(r"\d+", path.parent.name)],
        reverse=True,
    )
    for bindir in candidates:
        if all((bindir / name).is_file() for name in SERVER_BINARIES):
            return bindir
    return None


def wait_until_idle(worker, threads: int) -> None:
    """Wait until every thread waits for a wake-up and the dispatcher made its first check.

    From then on only a notification, a due job or the 30 s poll can start a claim.
    """
    worker.wait_for_log("is idle", count=threads)
    listener = f"dpq:%:{worker.pid}:listen"
    wait_until(
        lambda: fetch(
            "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE %s "
            "AND state = 'idle' AND query LIKE %s",
            [listener, "%ORDER BY execute_at LIMIT 1%"],
        )
    )


def effect_of(job_id: int) -> bool:
    return Effect.objects.filter(job_id=job_id).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_listen_wakes_an_idle_worker_long_before_the_poll(worker_process):
    worker = worker_process("--delay", "30", threads=2)
    wait_until_idle(worker, 2)

    seen = len(worker.log)
    job = queue.enqueue("record")

    wait_until(lambda: effect_of(job.id), WELL_BEFORE_THE_POLL)
    assert "Woken by 1 notification(s)" in worker.log[seen:]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_delayed_job_runs_when_due_without_waiting_for_a_poll(worker_process):
    worker = worker_process("--delay", "30", threads=2)
    wait_until_idle(worker, 2)

    due = timezone.now() + datetime.timedelta(seconds=2)
    job = queue.enqueue("record", execute_at=due)

    wait_until(lambda: effect_of(job.id), WELL_BEFORE_THE_POLL)
    assert timezone.now() >= due
    assert not Job.objects.exists()


def listener_pid(worker) -> int | None:
    """The backend pid of the worker's listening connection, if it has one."""
    for name, pid in worker.connections().items():
        if name.endswith(":listen"):
            return pid
    return None


def terminate_sessions(worker) -> int:
    """pg_terminate_backend() on every connection of the worker; returns how many."""
    rows = fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name LIKE %s",
        [f"dpq:%:{worker.pid}:%"],
    )
    return sum(1 for (done,) in rows if done)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_reconnects_after_every_session_is_terminated(worker_process):
    ids = worker_queue.enqueue_many(
        [("slow_record", {"seconds": 0.02}) for _ in range(400)]
    )
    worker = worker_process(
        "--delay", "30", queue="tests.queues.worker_queue", threads=4
    )
    # Four threads and the listener: a start beside other jobs is not written, so the
    # crash-accounting connection is not open yet.
    wait_until(lambda: Effect.objects.count() >= 40 and len(worker.connections()) == 5)
    old_listener = listener_pid(worker)

    assert terminate_sessions(worker) == 5

    wait_until(lambda: Effect.objects.count() == len(ids), 120)
    assert not Job.objects.exists()
    assert "The listening connection was lost" in worker.log
    assert worker.alive()

    # The new listening session LISTENs again: a new job is taken without waiting for a poll.
    wait_until(lambda: listener_pid(worker) not in (None, old_listener))
    wait_until_idle(worker, 4)
    seen = len(worker.log)
    job = worker_queue.enqueue("record")
    wait_until(lambda: effect_of(job.id), WELL_BEFORE_THE_POLL)
    # Taken on the notification, not by a poll that happened to fall due.
    assert "Woken by 1 notification(s)" in worker.log[seen:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A private PostgreSQL cluster in a temporary directory, run by the postgres OS user."""

    def __init__(self, bindir: Path, data: Path, port: int, user: str | None) -> None:
        self.bindir = bindir
        self.data = data
        self.port = port
        self.user = user
        self.url = f"postgres://postgres@127.0.0.1:{port}/dpq"

    def run(self, *argv: str | Path, timeout: float = 120) -> None:
        command = [str(part) for part in argv]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout
        )
        assert result.returncode == 0, (
            f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}"
        )

    def pg_ctl(self, *args: str) -> None:
        log = self.data / "server.log"
        self.run(self.bindir / "pg_ctl", "-D", self.data, "-l", log, *args)

    def connect(self, dbname: str = "dpq"):
        raw = driver.connect(f"postgres://postgres@127.0.0.1:{self.port}/{dbname}")
        raw.autocommit = True
        return raw

    def execute(self, statement: str, params: tuple = ()) -> list[tuple]:
        with contextlib.closing(self.connect()) as raw, raw.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def private_cluster() -> Iterator[Cluster]:
    """A PostgreSQL of the test's own, migrated, that the test may restart; removed after."""
    bindir = find_server_bindir()
    if bindir is None:
        pytest.fail(
            "the PostgreSQL restart tests need the server binaries (initdb, pg_ctl): none "
            "on PATH, in `pg_config --bindir` or in /usr/lib/postgresql/*/bin; install "
            "them (Debian: apt-get install postgresql) or put their directory on PATH"
        )
    # initdb refuses to run as root: the cluster belongs to the postgres OS user then.
    user = "postgres" if os.geteuid() == 0 else None
    if user is not None and shutil.which("runuser") is None:
        pytest.fail(
            "the PostgreSQL restart tests run as root here, and need runuser (util-linux) "
            "to start the server as the postgres OS user"
        )
    data = Path(tempfile.mkdtemp(prefix="dpq-cluster-"))
    if user is not None:
        shutil.chown(data, user)
    cluster = Cluster(bindir, data, free_port(), user)
    try:
        cluster.run(
            bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"
        )
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {cluster.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{data}'\nfsync = off\n"
            )
        cluster.pg_ctl("-w", "start")
        with (
            contextlib.closing(cluster.connect("postgres")) as raw,
            raw.cursor() as cursor,
        ):
            cursor.execute("CREATE DATABASE dpq")
        migrate = subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v", "0"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": cluster.url,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "PYTHONPATH": str(ROOT),
            },
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        yield cluster
    finally:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            cluster.pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


def enqueue_raw(cluster: Cluster, task: str, count: int, args: str = "{}") -> None:
    """Enqueue on the private cluster (the test's Django connection is on the shared one)."""
    cluster.execute(
        "INSERT INTO dpq_job (task, args) SELECT %s, %s::jsonb FROM generate_series(1, %s)",
        (task, args, count),
    )
    cluster.execute("SELECT pg_notify('dpq-tests', '')")


def cluster_counts(cluster: Cluster) -> tuple[int, int]:
    """(effects committed, jobs left) on the private cluster."""
    return cluster.execute(
        "SELECT (SELECT count(*) FROM testapp_effect), (SELECT count(*) FROM dpq_job)"
    )[0]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_survives_a_postgresql_restart(worker_process, private_cluster):
    enqueue_raw(private_cluster, "slow_record", 200, '{"seconds": 0.02}')
    worker = worker_process(
        "--delay",
        "30",
        queue="tests.queues.worker_queue",
        threads=4,
        database=private_cluster.url,
    )
    wait_until(lambda: cluster_counts(private_cluster)[0] >= 20)

    private_cluster.pg_ctl("-w", "-m", "fast", "restart")
    enqueue_raw(private_cluster, "record", 100)

    wait_until(lambda: cluster_counts(private_cluster) == (300, 0), 120)
    assert worker.alive()
    assert "The listening connection was lost" in worker.log


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_idle_in_transaction_timeout_counts_as_a_crash_and_the_worker_survives(
    worker_process, tmp_path
):
    marker = tmp_path / "stalled"
    job = worker_queue.enqueue("stall_first_run", {"marker": str(marker), "seconds": 2})
    worker = worker_process(
        queue="tests.queues.worker_queue",
        threads=2,
        env={"PGOPTIONS": "-c idle_in_transaction_session_timeout=500"},
    )

    wait_until(lambda: effect_of(job.id), 60)

    # The second run saw two starts: the first one, cut off by the timeout, was counted.
    assert Effect.objects.get(job_id=job.id).note == "2"
    assert "idle_in_transaction_session_timeout" in worker.log
    assert worker.alive()
    later = worker_queue.enqueue("record")
    wait_until(lambda: effect_of(later.id))
    assert not Job.objects.exists()
