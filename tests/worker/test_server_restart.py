"""A PostgreSQL restart under a running worker: its jobs return to the queue, not as crashes.

The server is a private cluster from the local PostgreSQL binaries, so that restarting it
leaves the suite's own server alone.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpq import driver
from tests.conftest import wait_until
from tests.worker.conftest import ROOT

BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateServer:
    def __init__(self, home: Path) -> None:
        self.bindir = Path(BINDIRS[0])
        self.home = home
        self.data = home / "data"
        self.port = free_port()
        self.user = "postgres" if os.getuid() == 0 else None

    def run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)

    def pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"
        self.run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            *args,
        )

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "dpq_restart"):
        raw = driver.connect(self.url(dbname))
        raw.autocommit = True
        return raw

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:
        raw = self.connect()
        try:
            with raw.cursor() as cursor:
                cursor.execute(statement, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            raw.close()


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    if not BINDIRS or (os.getuid() == 0 and shutil.which("runuser") is None):
        pytest.fail("needs the PostgreSQL server binaries (initdb, pg_ctl)")
    # Not under pytest's tmp_path: as root the server runs as postgres, who cannot enter it.
    home = Path(tempfile.mkdtemp(prefix="dpq-restart-"))
    server = PrivateServer(home)
    if server.user:
        shutil.chown(home, server.user)
    server.run(
        str(server.bindir / "initdb"), "-D", str(server.data), "-U", "postgres",
        "--auth=trust",
    )  # fmt: skip
    server.pg_ctl("start", "-l", str(home / "log"))
    try:
        raw = driver.connect(server.url())
        raw.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute("CREATE DATABASE dpq_restart")
        raw.close()
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v0"],
            check=True,
            cwd=ROOT,
            timeout=120,
            env={
                **os.environ,
                "DATABASE_URL": server.url("dpq_restart"),
                "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
                "PYTHONPATH": str(ROOT),
            },
        )
        yield server
    finally:
        server.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(home, ignore_errors=True)


def running_jobs(server: PrivateServer) -> int:
    """Worker threads inside a job's transaction (a task sleeps with it open)."""
    try:
        return server.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'dpq:%%:t%%' "
            "AND state = 'idle in transaction'"
        )[0][0]
    except driver.OperationalError:
        return 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_server_restart_is_not_a_crash_of_every_running_job(
    private_server, worker_process
):
    private_server.query(
        "INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue) "
        "SELECT now(), now(), 0, 'slow_record', '{\"seconds\": 5}', 'default' "
        "FROM generate_series(1, 16)"
    )
    worker = worker_process(
        "--burst",
        queue="tests.queues.worker_queue",
        threads=8,
        database=private_server.url("dpq_restart"),
    )
    wait_until(lambda: running_jobs(private_server) == 8, 60)

    private_server.pg_ctl(
        "restart", "-m", "fast", "-l", str(private_server.home / "log")
    )
    up = time.monotonic()
    wait_until(lambda: running_jobs(private_server) == 8, 60)
    back_in = time.monotonic() - up

    assert worker.wait_for_exit(120) == 0, worker.log
    assert back_in < 15, f"8 jobs ran at once again {back_in:.1f}s after the restart"
    effects = private_server.query("SELECT job_id FROM testapp_effect")
    assert len(effects) == 16
    assert private_server.query("SELECT count(*) FROM dpq_job") == [(0,)]
    assert private_server.query("SELECT count(*) FROM dpq_jobstart") == [(0,)]
    assert "was running when a worker died" not in worker.log
    assert "not counted as crashes" in worker.log
    print(f"8 jobs at once again {back_in:.1f}s after the server accepted connections")
