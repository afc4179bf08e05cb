"""Private PostgreSQL clusters from the local server binaries, for tests that stop, kill,
replicate or cut off a server without touching the suite's own one.

As root, the server runs as the ``postgres`` user (initdb refuses root), so its home is not
under pytest's tmp_path, which that user cannot enter.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dpq import driver

BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
ROOT = Path(__file__).resolve().parents[1]
# The database each private server gets, migrated with the worker suite's settings.
DBNAME = "dpq_restart"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unavailable(reason: str) -> None:
    """Skip for a tool this machine lacks; fail in CI (DPQ_REQUIRE_DEPLOY), which installs it."""
    if os.environ.get("DPQ_REQUIRE_DEPLOY"):
        pytest.fail(reason)
    pytest.skip(reason)


def require_server_binaries() -> None:
    if not BINDIRS or (os.getuid() == 0 and shutil.which("runuser") is None):
        pytest.fail("needs the PostgreSQL server binaries (initdb, pg_ctl)")


class PrivateServer:
    """One cluster: its data directory, port and addresses, started with ``settings``."""

    def __init__(
        self,
        home: Path,
        name: str = "data",
        *,
        addresses: str = "127.0.0.1",
        settings: dict[str, object] | None = None,
    ) -> None:
        self.bindir = Path(BINDIRS[0])
        self.home = home
        self.name = name
        self.data = home / name
        self.log_path = home / f"{name}.log"
        self.port = free_port()
        self.addresses = addresses
        self.settings = dict(settings or {})
        self.user = "postgres" if os.getuid() == 0 else None

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run(
            [*prefix, *argv], check=check, capture_output=True, timeout=120
        )

    def initdb(self) -> None:
        self.run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust",
        )  # fmt: skip

    def allow(self, cidr: str) -> None:
        """Let clients from ``cidr`` in (trust), replication included."""
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {cidr} trust\n")
            hba.write(f"host replication all {cidr} trust\n")

    def pg_ctl(self, *args: str, check: bool = True) -> None:
        options = (
            f"-p {self.port} -k {self.home} -c listen_addresses='{self.addresses}'"
        )
        for key, value in self.settings.items():
            options += f" -c {key}={value}"
        self.run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-w",
            *args, check=check,
        )  # fmt: skip

    def start(self) -> None:
        self.pg_ctl("start", "-l", str(self.log_path))

    def restart(self) -> None:
        self.pg_ctl("restart", "-m", "fast", "-l", str(self.log_path))

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", check=False)

    def promote(self) -> None:
        self.run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "promote")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill_postmaster(self) -> None:
        """SIGKILL the postmaster alone: its backends notice and exit by themselves."""
        os.kill(self.postmaster_pid(), signal.SIGKILL)

    def replicate_from(self, primary: PrivateServer, application_name: str) -> None:
        """Make this cluster a streaming standby of ``primary`` (pg_basebackup -R)."""
        self.run(
            str(self.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p",
            str(primary.port), "-U", "postgres", "-D", str(self.data), "-R",
            "-X", "stream",
        )  # fmt: skip
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            conf.write(
                f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user=postgres "
                f"application_name={application_name}'\n"
            )

    def url(self, dbname: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"postgres://postgres@{host}:{self.port}/{dbname}"

    def connect(self, dbname: str = DBNAME):
        raw = driver.connect(self.url(dbname))
        raw.autocommit = True
        return raw

    def query(self, statement: str, params: tuple = (), dbname: str = DBNAME) -> list:
        raw = self.connect(dbname)
        try:
            with raw.cursor() as cursor:
                cursor.execute(statement, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            raw.close()

    def create_database(self) -> None:
        """Create DBNAME and migrate it (the test project's models and dpq's)."""
        self.query(f"CREATE DATABASE {DBNAME}", dbname="postgres")
        migrate(self.url(DBNAME))


def migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v0"],
        check=True,
        cwd=ROOT,
        timeout=120,
        env={
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
            "PYTHONPATH": str(ROOT),
        },
    )


class Clusters:
    """The private servers of one test, all stopped and deleted at teardown."""

    def __init__(self) -> None:
        require_server_binaries()
        self.home = Path(tempfile.mkdtemp(prefix="dpq-pg-"))
        self.servers: list[PrivateServer] = []
        if os.getuid() == 0:
            shutil.chown(self.home, "postgres")

    def new(self, name: str = "data", **kwargs) -> PrivateServer:
        server = PrivateServer(self.home, name, **kwargs)
        self.servers.append(server)
        return server

    def primary(self, name: str = "data", **kwargs) -> PrivateServer:
        """A new cluster, started, with DBNAME migrated."""
        server = self.new(name, **kwargs)
        server.initdb()
        server.start()
        server.create_database()
        return server

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        # A killed postmaster's backends may take a moment to notice and exit.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _processes_under(self.home):
            time.sleep(0.1)
        shutil.rmtree(self.home, ignore_errors=True)


def _processes_under(home: Path) -> bool:
    """Whether a process still has its working directory under ``home`` (a server's)."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/cwd").startswith(str(home)):
                    return True
            except OSError:
                continue
    return False


def running_jobs(server: PrivateServer, like: str = "dpq:%:t%") -> int:
    """Worker threads inside a job's transaction (a task sleeping with it open)."""
    try:
        return server.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s "
            "AND state = 'idle in transaction'",
            (like,),
        )[0][0]
    except driver.OperationalError:
        return 0


def worker_sessions(server: PrivateServer, like: str = "dpq:%") -> int:
    """Sessions whose application name matches ``like`` (0 while the server is down)."""
    try:
        return server.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
            (like,),
        )[0][0]
    except driver.OperationalError:
        return 0
