"""PgBouncer (Debian's package) in front of a private server, in session or transaction mode."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from dpq import driver
from tests.pgservers import DBNAME, PrivateServer, free_port, unavailable

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def require_pgbouncer() -> None:
    if not os.path.exists(PGBOUNCER):
        unavailable(
            "needs pgbouncer (apt-get install pgbouncer): the tests behind a pooler run "
            "Debian's package, not a stand-in"
        )


class Pgbouncer:
    """A pgbouncer process pooling DBNAME of ``server`` in ``mode`` with ``pool_size``."""

    def __init__(self, server: PrivateServer, mode: str, pool_size: int) -> None:
        require_pgbouncer()
        self.server = server
        self.mode = mode
        self.pool_size = pool_size
        self.port = free_port()
        self.home = server.home / f"pgbouncer-{mode}"
        self.home.mkdir()
        self.log_path = self.home / "pgbouncer.log"
        self.popen: subprocess.Popen | None = None

    def config(self) -> str:
        return "\n".join(
            [
                "[databases]",
                f"{DBNAME} = host=127.0.0.1 port={self.server.port} dbname={DBNAME}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                f"unix_socket_dir = {self.home}",
                "auth_type = trust",
                f"auth_file = {self.home / 'userlist.txt'}",
                f"pool_mode = {self.mode}",
                f"default_pool_size = {self.pool_size}",
                "max_client_conn = 200",
                "admin_users = postgres",
                "",
            ]
        )

    def start(self) -> None:
        (self.home / "userlist.txt").write_text('"postgres" ""\n')
        ini = self.home / "pgbouncer.ini"
        ini.write_text(self.config())
        if os.getuid() == 0:
            shutil.chown(self.home, "postgres")
        argv = [PGBOUNCER, str(ini)]
        if os.getuid() == 0:
            argv[1:1] = ["-u", "postgres"]  # pgbouncer refuses to run as root
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.query("SELECT 1")
                return
            except driver.OperationalError:
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"pgbouncer did not start:\n{self.log}")
                time.sleep(0.1)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DBNAME}"

    def query(self, statement: str) -> list:
        raw = driver.connect(self.url())
        raw.autocommit = True
        try:
            with raw.cursor() as cursor:
                cursor.execute(statement)
                return cursor.fetchall() if cursor.description else []
        finally:
            raw.close()

    def server_connections(self) -> int:
        """Server connections pgbouncer holds to DBNAME (seen on the server)."""
        return self.server.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            (DBNAME,),
        )[0][0]

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
