"""`make demo` end to end: demo_project/run_demo.py in a subprocess, on a scratch database.

The demo runs against a database of its own (``<DPQ_TEST_DB_NAME or test_dpq>_demo`` on the
server DATABASE_URL names), created here and dropped afterwards, so that it never touches the
suite's test database.
"""

from __future__ import annotations

import http.cookiejar
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from dpq import driver
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
RUN_DEMO = ROOT / "demo_project" / "run_demo.py"
START_TIMEOUT = 90


def scratch_database_name() -> str:
    base = os.environ.get("DPQ_TEST_DB_NAME", "test_dpq")
    return os.environ.get("DPQ_DEMO_TEST_DB_NAME", f"{base}_demo")


def connect(url: str):
    conn = driver.connect(url)
    conn.autocommit = True
    return conn


@pytest.fixture
def demo_database_url():
    """A fresh, empty database for the demo; dropped after the test."""
    url = os.environ["DATABASE_URL"]
    name = scratch_database_name()
    admin = connect(url)
    sql = driver.sql
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
        sql.Identifier(name)
    )
    with admin.cursor() as cursor:
        cursor.execute(drop)
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urllib.parse.urlsplit(url)
    yield urllib.parse.urlunsplit(parts._replace(path="/" + name))
    with admin.cursor() as cursor:
        cursor.execute(drop)
    admin.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces: the parent pid follows its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def process_group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class DemoRun:
    process: subprocess.Popen
    port: int
    database_url: str
    log: IO[str]
    # Process groups to kill if the test fails: the demo's own, then its children's.
    groups: list[int] = field(default_factory=list)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()


@pytest.fixture
def demo(demo_database_url):
    """Start run_demo.py; always reap it and every process group it made."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": demo_database_url, "DPQ_DEMO_PORT": str(port)}
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            [sys.executable, str(RUN_DEMO)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        run = DemoRun(process, port, demo_database_url, log, groups=[process.pid])
        try:
            yield run
        finally:
            for pgid in run.groups:
                if process_group_exists(pgid):
                    os.killpg(pgid, signal.SIGKILL)
            process.wait(timeout=10)


def fetch(opener, url: str, data: dict | None = None) -> tuple[int, str, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=10) as response:
            return response.status, response.geturl(), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, url, exc.read().decode(errors="replace")


def log_in(base: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    status, _, _ = fetch(opener, f"{base}/admin/login/")
    assert status == 200
    token = next(c.value for c in jar if c.name == "csrftoken")
    status, landed, _ = fetch(
        opener,
        f"{base}/admin/login/?next=/admin/",
        {"username": "demo", "password": "demo", "csrfmiddlewaretoken": token},
    )
    assert status == 200 and "/admin/login/" not in landed, "the demo login was refused"
    return opener


def login_page_answers(demo: DemoRun) -> bool:
    if demo.process.poll() is not None:
        pytest.fail(
            f"run_demo.py exited early ({demo.process.returncode}):\n{demo.output()}"
        )
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{demo.port}/admin/login/", timeout=2
        ) as response:
            return response.status == 200
    except OSError:
        return False


def dashboard_count(opener, base: str, state: str) -> int:
    """The dashboard's count of jobs in ``state`` ("5 running"), read from its text."""
    status, _, page = fetch(opener, f"{base}/admin/dpq/job/")
    assert status == 200, page[-2000:]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    match = re.search(rf"(\d+) {state}\b", text)
    return int(match.group(1)) if match else 0


RUNNING_JOBS = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND application_name LIKE 'dpq:%%'
      AND state = 'idle in transaction'
"""
FAILED_JOBS = "SELECT count(*) FROM dpq_job WHERE failed_at IS NOT NULL"


@pytest.mark.slow
def test_demo_shows_running_and_failed_jobs_then_stops_cleanly_on_ctrl_c(demo):
    base = f"http://127.0.0.1:{demo.port}"
    wait_until(lambda: login_page_answers(demo), timeout=START_TIMEOUT, interval=0.5)
    opener = log_in(base)
    db = connect(demo.database_url)

    def count(query: str) -> int:
        with db.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchone()[0]

    try:
        # Workers hold a claim transaction open while a job runs: running jobs.
        wait_until(lambda: count(RUNNING_JOBS) > 0, timeout=START_TIMEOUT, interval=0.2)
        # The overdraft fails 3 times, a few seconds apart, and is kept as failed.
        wait_until(lambda: count(FAILED_JOBS) > 0, timeout=START_TIMEOUT, interval=0.5)
    finally:
        db.close()

    # The site's root opens the dashboard, which counts running and failed jobs.
    status, landed, _ = fetch(opener, f"{base}/")
    assert status == 200 and landed == f"{base}/admin/dpq/job/"
    wait_until(
        lambda: (
            dashboard_count(opener, base, "running") > 0
            and dashboard_count(opener, base, "failed") > 0
        ),
        timeout=30,
        interval=0.5,
    )
    status, _, page = fetch(opener, f"{base}/admin/dpq/job/failed/")
    assert status == 200 and "InsufficientFundsError" in page

    stop_and_check_nothing_is_left(demo, signal.SIGINT, to_group=True)
    output = demo.output()
    assert "Dashboard: http://127.0.0.1:" in output
    assert "Login:     demo / demo" in output
    assert "dpq worker stopped" in output


@pytest.mark.slow
def test_demo_stops_cleanly_on_sigterm(demo):
    wait_until(lambda: workers_started(demo), timeout=START_TIMEOUT, interval=0.5)
    stop_and_check_nothing_is_left(demo, signal.SIGTERM)
    assert demo.output().count("dpq worker stopped") == 3


@pytest.mark.slow
def test_demo_stops_and_names_the_child_when_a_worker_dies(demo):
    wait_until(lambda: workers_started(demo), timeout=START_TIMEOUT, interval=0.5)
    children = child_pids(demo.process.pid)
    demo.groups.extend(children)
    reports = next(pid for pid in children if "reports_queue" in command_line(pid))

    os.kill(reports, signal.SIGKILL)

    assert demo.process.wait(timeout=60) == 1, demo.output()
    assert "reports exited unexpectedly with status -9" in demo.output()
    for pgid in demo.groups:
        assert not process_group_exists(pgid), f"processes of group {pgid} are left"


def test_choose_port_takes_the_next_free_port_and_says_so(capsys, monkeypatch):
    run_demo = load_run_demo(monkeypatch)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        chosen = run_demo.choose_port(None, first=port)

    assert chosen > port
    assert (
        f"port {port} is taken; using port {chosen} instead" in capsys.readouterr().out
    )


def workers_started(demo: DemoRun) -> bool:
    if demo.process.poll() is not None:
        pytest.fail(
            f"run_demo.py exited early ({demo.process.returncode}):\n{demo.output()}"
        )
    return demo.output().count("dpq worker started") == 3


def command_line(pid: int) -> str:
    return (
        (Path("/proc") / str(pid) / "cmdline")
        .read_bytes()
        .replace(b"\0", b" ")
        .decode()
    )


def stop_and_check_nothing_is_left(demo: DemoRun, signum, *, to_group: bool = False):
    """Send ``signum`` (to the whole process group, as a terminal's Ctrl-C does, when
    ``to_group``); the demo must exit 0 and leave no process of any group it made."""
    children = child_pids(demo.process.pid)
    assert len(children) == 4, demo.output()
    demo.groups.extend(children)
    if to_group:
        os.killpg(demo.process.pid, signum)
    else:
        os.kill(demo.process.pid, signum)
    assert demo.process.wait(timeout=60) == 0, demo.output()
    for pgid in demo.groups:
        assert not process_group_exists(pgid), f"processes of group {pgid} are left"


def load_run_demo(monkeypatch):
    """Import demo_project/run_demo.py (not on the path: it is a script)."""
    spec = importlib.util.spec_from_file_location("run_demo", RUN_DEMO)
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up in sys.modules.
    monkeypatch.setitem(sys.modules, "run_demo", module)
    spec.loader.exec_module(module)
    return module
