"""Fixtures for the worker suite: real ``dpq_worker`` subprocesses on the test database.

Every worker runs in its own process group with its output in a file, and is killed with
its group (SIGKILL) at teardown, before pytest-django empties the tables.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from dpq.models import Job
from tests.conftest import wait_until
from tests.queues import queue
from tests.testapp.models import Effect

ROOT = Path(__file__).resolve().parents[2]
WORKER_SETTINGS = "tests.worker_settings"
HOST = socket.gethostname().split(".")[0]


def database_url(name: str | None = None, **overrides: object) -> str:
    """A URL for the test database (pytest-django's, not the one DATABASE_URL names)."""
    db = {**settings.DATABASES["default"], **overrides}
    auth = db.get("USER") or ""
    if db.get("PASSWORD"):
        auth += ":" + db["PASSWORD"]
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{name or db['NAME']}"


class WorkerProcess:
    """A running ``dpq_worker``: its Popen, its log file, and ways to look at both."""

    def __init__(self, popen: subprocess.Popen, log_path: Path) -> None:
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_log(self, text: str, timeout: float = 30.0, count: int = 1) -> None:
        """Wait until ``text`` occurs ``count`` times in the log; fail early if the worker exits."""

        def found() -> bool:
            if self.log.count(text) >= count:
                return True
            if not self.alive():
                pytest.fail(
                    f"worker exited with {self.popen.returncode} before logging {text!r}:\n{self.log}"
                )
            return False

        wait_until(found, timeout)

    def wait_for_exit(self, timeout: float = 60.0) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker still running after {timeout}s:\n{self.log[-5000:]}")

    def send(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def kill(self) -> int:
        """SIGKILL the worker's whole process group and reap it."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.popen.wait(30)

    def connections(self) -> dict[str, int]:
        """The worker's live connections: application_name -> backend pid."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT application_name, pid FROM pg_stat_activity "
                "WHERE application_name LIKE %s",
                [f"dpq:%:{self.pid}:%"],
            )
            return dict(cursor.fetchall())

    def gone_from_database(self) -> bool:
        return not self.connections()


@pytest.fixture
def worker_process(transactional_db, tmp_path) -> Iterator:
    """Factory: ``worker_process("--burst", threads=4, queue="tests.queues.queue")``.

    ``env`` adds variables to the worker's environment (the test database's URL, the
    logging settings and PYTHONPATH are set already); ``database`` replaces the URL;
    ``prefix`` runs the worker through a command that execs it (``ip netns exec NS``).
    """
    started: list[WorkerProcess] = []

    def start(
        *args: str,
        queue: str = "tests.queues.queue",
        threads: int = 4,
        command: str = "dpq_worker",
        database: str | None = None,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
    ) -> WorkerProcess:
        argv = [*prefix, sys.executable, "-m", "django", command]
        if queue:
            argv.append(queue)
        if threads is not None:
            argv += ["--threads", str(threads)]
        argv += list(args)
        child_env = {
            **os.environ,
            "DATABASE_URL": database or database_url(),
            "DJANGO_SETTINGS_MODULE": WORKER_SETTINGS,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        log_path = tmp_path / f"worker-{len(started) + 1}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=ROOT,
                start_new_session=True,
            )
        process = WorkerProcess(popen, log_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
    # pytest-django empties the tables next: wait until no worker session holds a lock.
    for process in started:
        wait_until(process.gone_from_database, 30)


def fetch(query: str, params: list | tuple = ()) -> list[tuple]:
    """Rows of a query on the test's own connection (autocommit)."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def scalar(query: str, params: list | tuple = ()) -> object:
    return fetch(query, params)[0][0]


def claimed_when_the_worker_died() -> set[int]:
    """Ids of queued jobs whose row still carries the lock of a claim that rolled back.

    A claim's DELETE leaves its transaction id in the row's xmax; when the claim dies with
    its worker the row is back, xmax kept, until the next claim locks it.
    """
    rows = fetch("SELECT id FROM dpq_job WHERE xmax::text <> '0'")
    return {row[0] for row in rows}


def storm(process, seed: int, *, stop_text: str) -> int:
    """Send a random burst of SIGTERM/SIGINT at random moments; return how many were sent.

    Between signals the test sends notifications, each of which makes the dispatcher take
    the pool's lock: the gaps are the storm's randomness, not a synchronisation. The storm
    ends early once the process says it stopped (a signal later than that finds only an
    interpreter shutting down).
    """
    rng = random.Random(seed)
    sent = 0
    for _ in range(rng.randint(2, 12)):
        for _ in range(rng.randint(0, 30)):
            queue.notify()
        if not process.alive() or stop_text in process.log:
            break
        process.send(rng.choice([signal.SIGTERM, signal.SIGINT]))
        sent += 1
    return sent


def assert_each_job_ran_once_or_is_back(ids: list[int]) -> None:
    ran = set(Effect.objects.values_list("job_id", flat=True))
    left = dict(Job.objects.values_list("id", "attempts"))
    assert ran | set(left) == set(ids)
    assert not ran & set(left)
    assert set(left.values()) <= {0}
    assert not Job.objects.filter(failed_at__isnull=False).exists()
