"""manage.py dpq_health against real workers: the heartbeat file, a stuck or dead worker, the database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.worker.conftest import ROOT, WORKER_SETTINGS, database_url

pytestmark = pytest.mark.slow


def health(*args: str, database: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": database or database_url(),
        "DJANGO_SETTINGS_MODULE": WORKER_SETTINGS,
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "dpq_health", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_live_worker_then_a_stuck_one_then_a_dead_one(worker_process, tmp_path):
    beat_file = str(tmp_path / "heartbeat")
    worker = worker_process("--heartbeat-file", beat_file, threads=2)
    wait_until(lambda: os.path.exists(beat_file), 30)
    beat = json.loads(Path(beat_file).read_text())
    assert (beat["pid"], beat["threads"], beat["role"]) == (worker.pid, 2, "worker")

    done = health("--heartbeat-file", beat_file)
    assert done.returncode == 0, done.stderr
    assert f"worker {worker.pid} on" in done.stdout and "database: ok" in done.stdout

    # Stopped, the worker's loop no longer turns: its heartbeat goes stale.
    worker.send(signal.SIGSTOP)
    try:
        time.sleep(4)
        done = health("--heartbeat-file", beat_file, "--max-age", "3", "--no-database")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "stuck or gone" in done.stderr
    finally:
        worker.send(signal.SIGCONT)
    wait_until(
        lambda: health("--heartbeat-file", beat_file, "--max-age", "3").returncode == 0,
        30,
    )

    # Killed, it leaves its file behind: the process it names is gone.
    worker.kill()
    done = health("--heartbeat-file", beat_file, "--no-database")
    assert done.returncode == 2
    assert f"worker process {worker.pid} of the heartbeat" in done.stderr


def test_a_worker_that_stops_removes_its_heartbeat(worker_process, tmp_path):
    beat_file = str(tmp_path / "heartbeat")
    worker = worker_process("--heartbeat-file", beat_file, threads=1)
    wait_until(lambda: os.path.exists(beat_file), 30)
    worker.send(signal.SIGTERM)
    assert worker.wait_for_exit() == 0
    assert not os.path.exists(beat_file)
    done = health("--heartbeat-file", beat_file, "--no-database")
    assert done.returncode == 2 and "no heartbeat file" in done.stderr


def test_processes_each_have_a_heartbeat(worker_process, tmp_path):
    beat_file = str(tmp_path / "heartbeat")
    worker = worker_process(
        "--heartbeat-file", beat_file, "--processes", "2", threads=1
    )

    def children() -> list[int]:
        try:
            beat = json.loads(Path(beat_file).read_text())
        except (OSError, ValueError):
            return []
        return beat["children"] if len(beat["children"]) == 2 else []

    first = wait_until(children, 30)
    done = health("--heartbeat-file", beat_file)
    assert done.returncode == 0, done.stderr
    assert f"supervisor {worker.pid}" in done.stdout
    assert (
        done.stdout.count("1 thread(s) busy")
        + done.stdout.count("0 of 1 thread(s) busy")
        >= 2
    )

    # A worker process killed: the supervisor starts another, and names it.
    os.kill(first[0], signal.SIGKILL)
    wait_until(lambda: first[0] not in children() and children(), 30)
    assert not os.path.exists(f"{beat_file}.{first[0]}")
    wait_until(lambda: health("--heartbeat-file", beat_file).returncode == 0, 30)


def test_an_unreachable_database_exits_1(transactional_db, tmp_path):
    done = health(database=database_url(PORT=1))
    assert done.returncode == 1
    assert "the database does not answer" in done.stderr


def test_no_database_needs_a_heartbeat_file(transactional_db):
    done = health("--no-database")
    assert done.returncode == 3
    assert "give --heartbeat-file" in done.stderr
