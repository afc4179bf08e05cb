#!/usr/bin/env python3
"""Find or start a PostgreSQL server for development; print its DATABASE_URL.

    python3 scripts/dbenv.py [--dbname NAME] [--no-local] [--bin-dir DIR ...]
    python3 scripts/dbenv.py stop

In order of preference:

1. ``$DATABASE_URL`` when set, printed unchanged.
2. A server answering on 127.0.0.1:5432, used as the current OS user (skipped
   when it refuses that user, as a fresh Debian/Ubuntu install does).
3. A private cluster in ``.pgdata/`` at the repository root, created and started
   from the local PostgreSQL binaries, listening on 127.0.0.1 only (port 54329
   unless taken). It keeps running between runs; ``stop`` stops it.

The database named by ``--dbname`` is created when missing. Only the URL goes to
stdout, every message goes to stderr. Standard library only, so that the system
python3 can run it before any virtualenv exists.

Environment: ``DATABASE_URL`` (use as is), ``DPQ_DBENV_NO_LOCAL=1`` (same as
``--no-local``), ``DPQ_PG_BIN_DIRS`` (same as ``--bin-dir``, separated by ``:``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import getpass
import glob
import hashlib
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
PGDATA = ROOT / ".pgdata"
HOST = "127.0.0.1"
LOCAL_PORT = 5432
PREFERRED_PORT = 54329
START_TIMEOUT = 30

# Where server binaries (initdb, pg_ctl) are looked for after PATH, newest first.
SEARCH_DIRS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL, Fedora (PGDG)
    "/usr/local/pgsql/bin",  # built from source
    "/opt/homebrew/opt/postgresql@*/bin",  # Homebrew, Apple silicon (keg-only)
    "/opt/homebrew/bin",
    "/usr/local/opt/postgresql@*/bin",  # Homebrew, Intel (keg-only)
    "/usr/local/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)

# Variables that would point the client tools somewhere else than we ask.
DROPPED_ENV = {
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGSERVICE",
    "PGOPTIONS",
}

INSTALL_HINT = """\
Install PostgreSQL (the server binaries initdb and pg_ctl are enough; nothing
needs to run, a private cluster is started in .pgdata/), then run this again:
  Debian/Ubuntu:  sudo apt-get install postgresql postgresql-contrib
  macOS:          brew install postgresql@15
or set DATABASE_URL to a server you can use (postgres://user@host:port/dbname)."""

Find = Callable[[str], str | None]


class DbEnvError(Exception):
    """A failure explained to the user; exit status 1."""


def log(message: str) -> None:
    print(f"dbenv: {message}", file=sys.stderr)


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry
        return str(os.geteuid())


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def make_url(user: str, port: int, dbname: str) -> str:
    return f"postgres://{quote(user, safe='')}@{HOST}:{port}/{quote(dbname, safe='')}"


# --- running commands -------------------------------------------------------


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    user: str | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run a command quietly, optionally as another OS user (we are root then)."""
    argv = [os.fspath(part) for part in cmd]
    if user is not None:
        if runuser := system_tool("runuser"):
            argv = [runuser, "-u", user, "--", *argv]
        else:
            su = system_tool("su") or "su"
            argv = [su, user, "-s", "/bin/sh", "-c", shlex.join(argv)]
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    try:
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        message = f"timed out after {timeout:.0f} s: {shlex.join(argv)}"
        raise DbEnvError(message) from exc
    except OSError as exc:
        raise DbEnvError(f"could not run {argv[0]}: {exc}") from exc


def system_tool(name: str) -> str | None:
    for folder in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if executable(Path(folder) / name):
            return str(Path(folder) / name)
    return shutil.which(name)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr.strip() or result.stdout.strip()).replace("\n", "\n  ")


# --- finding binaries -------------------------------------------------------


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path))


def search_locations(override: Sequence[str] | None) -> list[str]:
    """The folders searched after PATH: --bin-dir, $DPQ_PG_BIN_DIRS or the usual."""
    if override is None and os.environ.get("DPQ_PG_BIN_DIRS"):
        override = os.environ["DPQ_PG_BIN_DIRS"].split(os.pathsep)
    return [d for d in override if d] if override is not None else list(SEARCH_DIRS)


def search_dirs(override: Sequence[str] | None) -> list[Path]:
    """PATH, then the other folders (globs expanded newest first), no duplicates."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for location in search_locations(override):
        if "*" in location:
            dirs += sorted(glob.glob(location), key=_version_key, reverse=True)
        else:
            dirs.append(location)
    return list(dict.fromkeys(Path(d) for d in dirs))


def executable(path: Path) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def finder(dirs: Sequence[Path], first: Path | None = None) -> Find:
    """Look a client tool up in ``first`` (the server's own folder), then ``dirs``."""

    def find(name: str) -> str | None:
        for d in [first, *dirs] if first else dirs:
            if executable(d / name):
                return str(d / name)
        return None

    return find


def server_bindirs(dirs: Sequence[Path]) -> list[Path]:
    """Folders holding initdb and pg_ctl, symlinks resolved (/usr/local/bin/initdb)."""
    found: list[Path] = []
    for d in dirs:
        if executable(d / "initdb") and executable(d / "pg_ctl"):
            real = Path(os.path.realpath(d / "initdb")).parent
            found.append(real if executable(real / "pg_ctl") else d)
    return list(dict.fromkeys(found))


def server_major(bindir: Path) -> str | None:
    """``15`` for PostgreSQL 15.x, ``9.6`` for 9.6.x: as written in PG_VERSION."""
    version = run([bindir / "pg_ctl", "--version"]).stdout
    match = re.search(r"PostgreSQL\)\s+(\d+)(?:\.(\d+))?", version)
    if not match:
        return None
    return match[1] if int(match[1]) >= 10 else f"{match[1]}.{match[2]}"


# --- talking to a server ----------------------------------------------------


def tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def psql_args(find: Find, port: int, user: str, dbname: str) -> list[str] | None:
    psql = find("psql")
    if psql is None:
        return None
    return [
        *(psql, "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", HOST),
        *("-p", str(port), "-U", user, "-d", dbname),
    ]


def server_answers(find: Find, port: int, user: str) -> bool:
    pg_isready = find("pg_isready")
    if pg_isready:
        result = run([pg_isready, "-q", "-h", HOST, "-p", str(port), "-t", "3"])
        return result.returncode == 0
    if not tcp_open(HOST, port):
        return False
    psql = psql_args(find, port, user, "postgres")
    if psql is None:
        return True
    result = run([*psql, "-c", "select 1"])
    # An error from the server (bad role, no such database) still means one answers.
    return result.returncode == 0 or "FATAL" in result.stderr


def wait_ready(find: Find, port: int, user: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not server_answers(find, port, user):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def ensure_database(find: Find, port: int, user: str, dbname: str) -> str | None:
    """Create ``dbname`` unless it exists. Returns an error message or None."""
    createdb = find("createdb")
    psql = psql_args(find, port, user, "postgres")
    if createdb:
        result = run([createdb, "-w", "-h", HOST, "-p", str(port), "-U", user, dbname])
    elif psql:
        ident = '"' + dbname.replace('"', '""') + '"'
        result = run([*psql, "-c", f"CREATE DATABASE {ident}"])
    else:
        log("neither createdb nor psql found: cannot check that the database exists")
        return None
    if result.returncode == 0:
        log(f"created database {dbname!r}")
        return None
    if "already exists" in result.stderr:
        return None
    # Maybe it exists and we may not create databases: can we connect to it?
    psql = psql_args(find, port, user, dbname)
    if psql and run([*psql, "-c", "select 1"]).returncode == 0:
        return None
    return output(result)


def check_pgrowlocks(find: Find, port: int, user: str, dbname: str) -> None:
    """dpq's admin uses pgrowlocks when available; only warn when it is missing."""
    psql = psql_args(find, port, user, dbname)
    if psql is None:
        return
    result = run(
        [
            *psql,
            "-c",
            "select count(*) from pg_available_extensions where name = 'pgrowlocks'",
        ]
    )
    if result.returncode == 0 and result.stdout.strip() == "0":
        log(
            "note: the pgrowlocks extension is not installed on this server; "
            "dpq works without it, the features using it stay off. It comes with "
            "postgresql-contrib (sudo apt-get install postgresql-contrib)."
        )


# --- 1. DATABASE_URL, 2. the server on 127.0.0.1:5432 -----------------------


def local_server_url(dirs: Sequence[Path], dbname: str) -> str | None:
    find = finder(dirs)
    user = current_user()
    if not server_answers(find, LOCAL_PORT, user):
        return None
    error = ensure_database(find, LOCAL_PORT, user, dbname)
    if error:
        log(
            f"a PostgreSQL server answers on {HOST}:{LOCAL_PORT} but cannot be "
            f"used as {user!r}:\n  {error}"
        )
        log("falling back to a private cluster in .pgdata/")
        return None
    log(f"using the PostgreSQL server on {HOST}:{LOCAL_PORT}")
    check_pgrowlocks(find, LOCAL_PORT, user, dbname)
    return make_url(user, LOCAL_PORT, dbname)


# --- 3. the private cluster in .pgdata/ -------------------------------------


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise concurrent runs (make test and make demo side by side)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cluster_home() -> Path:
    """The folder holding data/, run/ and log: .pgdata itself, or the folder that
    .pgdata/cluster links to when the server's OS user cannot reach .pgdata."""
    link = PGDATA / "cluster"
    return Path(os.path.realpath(link)) if os.path.islink(link) else PGDATA


@dataclass
class Cluster:
    home: Path
    os_user: str | None  # run initdb and pg_ctl as this user (we are root), or None
    role: str  # the PostgreSQL superuser to connect as

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logfile(self) -> Path:
        return self.home / "log"

    @property
    def initialised(self) -> bool:
        return os.path.isfile(self.data / "PG_VERSION")

    def run(
        self, cmd: Sequence[str | os.PathLike[str]], timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return run(cmd, user=self.os_user, cwd=self.home, timeout=timeout)

    def chown(self, path: Path) -> None:
        if self.os_user is not None:
            entry = pwd.getpwnam(self.os_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.logfile.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n  ".join([f"last lines of {self.logfile}:", *tail])

    def running_port(self, bindir: Path) -> int | None:
        if self.run([bindir / "pg_ctl", "status", "-D", self.data]).returncode != 0:
            return None
        try:  # line 4 of postmaster.pid is the port
            return int((self.data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return read_port()

    def init(self, bindir: Path) -> None:
        if os.path.lexists(self.data):  # left over from an initdb that failed
            shutil.rmtree(self.data)
        log(f"creating a private PostgreSQL cluster in {rel(self.data)} ...")
        result = self.run(
            [
                *(bindir / "initdb", "-D", self.data, "-A", "trust", "-U", self.role),
                *("--no-sync", "-E", "UTF8", "--locale=C"),
            ],
            timeout=300,
        )
        if result.returncode != 0:
            raise DbEnvError(f"initdb failed:\n  {output(result)}")
        (PGDATA / "role").write_text(self.role + "\n")

    def start(self, bindir: Path) -> int:
        port = choose_port()
        (PGDATA / "port").write_text(f"{port}\n")
        sockets = self.home / "run"
        sockets.mkdir(exist_ok=True)
        self.chown(sockets)
        # sun_path holds 107 bytes; with a deep checkout, use TCP only.
        if len(os.fsencode(sockets / f".s.PGSQL.{port}")) > 100:
            sockets_setting = ""
        else:
            sockets_setting = str(sockets)
        options = (
            f"-p {port} -c listen_addresses={HOST}"
            f" -c unix_socket_directories={shlex.quote(sockets_setting)}"
        )
        log(f"starting it on {HOST}:{port} (log: {rel(self.logfile)}) ...")
        result = self.run(
            [
                *(bindir / "pg_ctl", "start", "-D", self.data, "-l", self.logfile),
                *("-w", "-t", str(START_TIMEOUT), "-o", options),
            ],
            timeout=START_TIMEOUT + 30,
        )
        if result.returncode != 0:
            raise DbEnvError(
                f"pg_ctl start failed:\n  {output(result)}\n  {self.log_tail()}"
            )
        return port

    def stop(self, bindir: Path) -> None:
        result = self.run(
            [bindir / "pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w"],
            timeout=90,
        )
        if result.returncode != 0:
            raise DbEnvError(f"pg_ctl stop failed:\n  {output(result)}")


def read_port() -> int | None:
    try:
        return int((PGDATA / "port").read_text().strip())
    except (OSError, ValueError):
        return None


def choose_port() -> int:
    saved = read_port()
    candidates = [saved] if saved else []
    candidates += range(PREFERRED_PORT, PREFERRED_PORT + 50)
    for port in candidates:
        if port_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def service_user(home: Path) -> str | None:
    """Who runs initdb and postgres: us, or an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return None
    data = home / "data"
    if os.path.isdir(data):
        owner = pwd.getpwuid(data.stat().st_uid).pw_name
        if owner != "root":
            return owner
    return "postgres" if user_exists("postgres") else "nobody"


def user_can_write(user: str, path: Path) -> bool:
    check = 'test -w "$1" && test -x "$1"'
    return run(["/bin/sh", "-c", check, "sh", path], user=user).returncode == 0


def open_cluster() -> Cluster:
    """Work out where the cluster lives and who runs it; create its folder."""
    home = cluster_home()
    os_user = service_user(home)
    saved_role = PGDATA / "role"
    if os.path.isfile(home / "data" / "PG_VERSION") and os.path.isfile(saved_role):
        role = saved_role.read_text().strip()
    else:
        role = "postgres" if os_user is not None else current_user()
    cluster = Cluster(home, os_user, role)
    if os_user is None:
        return cluster
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    cluster.chown(home)
    if home == PGDATA and not user_can_write(os_user, PGDATA):
        # The user cannot reach the checkout (e.g. under /root): keep the cluster
        # in the temporary folder and link it from .pgdata/cluster.
        digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
        cluster.home = Path(tempfile.gettempdir()) / f"dpq-pgdata-{digest}"
        log(f"{os_user!r} cannot reach {PGDATA}; keeping the cluster in {cluster.home}")
        cluster.home.mkdir(mode=0o700, exist_ok=True)
        cluster.chown(cluster.home)
        (PGDATA / "cluster").symlink_to(cluster.home)
    return cluster


def pick_bindir(candidates: Sequence[Path], cluster: Cluster) -> Path:
    """The first binaries found, or for an existing cluster those of its version."""
    if not cluster.initialised:
        return candidates[0]
    wanted = (cluster.data / "PG_VERSION").read_text().strip()
    versions = {bindir: server_major(bindir) for bindir in candidates}
    for bindir, version in versions.items():
        if version == wanted:
            return bindir
    raise DbEnvError(
        f"the cluster in {rel(cluster.data)} was made by PostgreSQL {wanted}, but "
        f"only these binaries were found: "
        + ", ".join(f"{v} in {b}" for b, v in versions.items())
        + f". Install PostgreSQL {wanted}, or delete {PGDATA} to start afresh."
    )


def private_cluster_url(args: argparse.Namespace) -> str:
    dirs = search_dirs(args.bin_dir)
    dbname = args.dbname
    candidates = server_bindirs(dirs)
    if not candidates:
        raise DbEnvError(
            f"no PostgreSQL found: DATABASE_URL is not set, no server on "
            f"{HOST}:{LOCAL_PORT} could be used, and no initdb/pg_ctl was found on "
            f"PATH or in: {' '.join(search_locations(args.bin_dir))}\n" + INSTALL_HINT
        )
    PGDATA.mkdir(exist_ok=True)
    with locked(PGDATA / ".lock"):
        cluster = open_cluster()
        bindir = pick_bindir(candidates, cluster)
        if not cluster.initialised:
            cluster.init(bindir)
        port = cluster.running_port(bindir)
        if port is None:
            port = cluster.start(bindir)
        find = finder(dirs, first=bindir)
        if not wait_ready(find, port, cluster.role, START_TIMEOUT):
            raise DbEnvError(
                f"the private cluster does not answer on {HOST}:{port} after "
                f"{START_TIMEOUT} s\n  {cluster.log_tail()}"
            )
        error = ensure_database(find, port, cluster.role, dbname)
        if error:
            raise DbEnvError(f"could not create database {dbname!r}:\n  {error}")
    log(
        f"using the private PostgreSQL cluster in {rel(cluster.data)} on "
        f"{HOST}:{port} (stop it with `make pg-stop`)"
    )
    check_pgrowlocks(find, port, cluster.role, dbname)
    return make_url(cluster.role, port, dbname)


# --- commands ---------------------------------------------------------------


def cmd_url(args: argparse.Namespace) -> None:
    url = os.environ.get("DATABASE_URL")
    if url:
        log("using DATABASE_URL")
        print(url)
        return
    dirs = search_dirs(args.bin_dir)
    no_local = args.no_local or os.environ.get("DPQ_DBENV_NO_LOCAL", "0") != "0"
    url = None if no_local else local_server_url(dirs, args.dbname)
    print(url or private_cluster_url(args))


def cmd_stop(args: argparse.Namespace) -> None:
    home = cluster_home()
    cluster = Cluster(home, service_user(home), role="")
    if not cluster.initialised:
        log("no private cluster in .pgdata/; nothing to stop")
        return
    candidates = server_bindirs(search_dirs(args.bin_dir))
    if not candidates:
        raise DbEnvError("no pg_ctl found to stop the private cluster with")
    bindir = pick_bindir(candidates, cluster)
    if cluster.running_port(bindir) is None:
        log("the private cluster in .pgdata/ is not running")
        return
    cluster.stop(bindir)
    log("stopped the private cluster in .pgdata/")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print a DATABASE_URL for development, starting a private "
        "PostgreSQL cluster in .pgdata/ when needed.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="url",
        choices=("url", "stop"),
        help="url (default): print the URL; stop: stop the private cluster",
    )
    parser.add_argument(
        "--dbname", default="dpq", help="database to create if missing (default: dpq)"
    )
    parser.add_argument(
        "--no-local",
        action="store_true",
        help=f"ignore a server on {HOST}:{LOCAL_PORT}; use the private cluster "
        "(env: DPQ_DBENV_NO_LOCAL=1)",
    )
    parser.add_argument(
        "--bin-dir",
        action="append",
        metavar="DIR",
        help="look for the PostgreSQL binaries in DIR (repeatable) and PATH instead "
        "of the usual folders (env: DPQ_PG_BIN_DIRS, ':'-separated)",
    )
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}", args.dbname):
        parser.error(f"unsupported database name: {args.dbname!r}")
    try:
        if args.command == "stop":
            cmd_stop(args)
        else:
            cmd_url(args)
    except DbEnvError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
