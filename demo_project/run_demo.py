#!/usr/bin/env python
"""Run the whole demo: database set-up, two workers, the web server and a trickle of jobs.

    DATABASE_URL=postgres://... python demo_project/run_demo.py [--port N]

`make demo` runs this with a DATABASE_URL it found or started. Steps: migrate, create the
demo superuser, enqueue a mix of jobs, start ``dpq_worker`` for each queue and ``runserver``
as child processes (each in its own process group, output shown with a prefix), then
enqueue a few jobs a second until Ctrl-C or SIGTERM. Stopping asks the workers to finish
their running jobs (SIGTERM), the web server to quit (SIGINT), kills whatever is still
there after a timeout, and exits 0 when every child exited cleanly. A second Ctrl-C kills
the children at once (exit status 1). A child that dies on its own stops the demo with
exit status 1.

Options: ``--port N`` (or DPQ_DEMO_PORT) for the web server; the default is 8000, or the
next free port when 8000 is taken.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

DEMO_DIR = Path(__file__).resolve().parent
ROOT = DEMO_DIR.parent
HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
# Seconds a worker may spend finishing its running jobs after SIGTERM (the longest demo job
# sleeps 8 s), and how long stopping may take in all before what is left is killed.
WORKER_GRACE = 10
STOP_TIMEOUT = WORKER_GRACE + 10
TRICKLE_INTERVAL = 1.0
SERVER_START_TIMEOUT = 60

COLOURS = {"demo": "1", "worker": "36", "reports": "35", "web": "33"}
print_lock = threading.Lock()


def say(source: str, line: str) -> None:
    """Print one line with a prefix naming where it comes from."""
    prefix = f"{source:<7} |"
    if sys.stdout.isatty():
        prefix = f"\033[{COLOURS.get(source, '0')}m{prefix}\033[0m"
    with print_lock:
        print(f"{prefix} {line}", flush=True)


class SetUpError(Exception):
    """A set-up step failed; the message says what to do."""


# --- Child processes -----------------------------------------------------------------


# prctl is looked up here, in the parent: the child between fork and exec should do as
# little as possible (no dlopen).
PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the demo process dies (Linux only), so
    that a demo killed with SIGKILL leaves no worker or server behind."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    args: list[str]
    stop_signal: signal.Signals
    process: subprocess.Popen[str] | None = None
    reader: threading.Thread | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        # A process group of its own: the terminal's Ctrl-C reaches only this script,
        # which then stops the children in order instead of all at once.
        self.process = subprocess.Popen(
            self.args,
            cwd=DEMO_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            process_group=0,
            preexec_fn=die_with_parent,
        )
        self.reader = threading.Thread(
            target=self.copy_output,
            args=(self.process.stdout,),
            name=f"output-{self.name}",
            daemon=True,
        )
        self.reader.start()

    def copy_output(self, stream: IO[str]) -> None:
        for line in stream:
            say(self.name, line.rstrip("\n"))

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_group(self, signum: signal.Signals) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def wait(self, deadline: float) -> int | None:
        """Wait for the process until ``deadline`` (monotonic); return its exit code or None."""
        if self.process is None:
            return None
        try:
            code = self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None
        if self.reader is not None:
            self.reader.join(timeout=2)
        return code


def build_children(port: int) -> list[Child]:
    """The web server, then a worker per queue (main() relies on this order)."""
    python = [sys.executable, "-u", "manage.py"]
    return [
        # runserver has no SIGTERM handler (it would die with status -15); SIGINT makes
        # it quit with status 0.
        Child(
            "web",
            [*python, "runserver", f"{HOST}:{port}", "--noreload"],
            signal.SIGINT,
        ),
        Child(
            "worker",
            [
                *python,
                *("dpq_worker", "--threads", "4", "--grace", str(WORKER_GRACE)),
            ],
            signal.SIGTERM,
        ),
        Child(
            "reports",
            [
                *python,
                *("dpq_worker", "demo.queue.reports_queue", "--threads", "1"),
                *("--grace", str(WORKER_GRACE)),
            ],
            signal.SIGTERM,
        ),
        # The @task tasks of Django's Tasks framework (demo/notifications.py).
        Child(
            "tasks",
            [
                *python,
                *("dpq_worker", "--backend", "default", "--threads", "2"),
                *("--grace", str(WORKER_GRACE)),
            ],
            signal.SIGTERM,
        ),
    ]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(DEMO_DIR), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["DJANGO_SETTINGS_MODULE"] = "demo_project.settings"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop_children(children: list[Child]) -> bool:
    """Ask every child to stop, kill those still running at the timeout; True if all exited 0."""
    for child in children:
        child.signal_group(child.stop_signal)
    deadline = time.monotonic() + STOP_TIMEOUT
    clean = True
    for child in children:
        if child.process is None:
            continue
        code = child.wait(deadline)
        if code is None:
            say(
                "demo", f"{child.name} did not stop within {STOP_TIMEOUT} s; killing it"
            )
            child.signal_group(signal.SIGKILL)
            code = child.wait(time.monotonic() + 5)
        # The group may hold processes the child started; none may outlive the demo.
        child.signal_group(signal.SIGKILL)
        if code == 0:
            say("demo", f"{child.name} stopped")
        else:
            say("demo", f"{child.name} exited with status {code}")
            clean = False
    return clean


# --- Set-up --------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As runserver binds: a port in TIME_WAIT after an earlier run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def choose_port(requested: int | None, first: int = DEFAULT_PORT) -> int:
    """The port asked for (which must be free), else ``first`` or the next free one."""
    if requested is not None:
        if not port_is_free(requested):
            raise SetUpError(f"port {requested} on {HOST} is taken; choose another")
        return requested
    for port in range(first, first + 100):
        if port_is_free(port):
            if port != first:
                say("demo", f"port {first} is taken; using port {port} instead")
            return port
    raise SetUpError(
        f"ports {first}-{first + 99} on {HOST} are all taken; pass --port N"
    )


def set_up_django() -> None:
    sys.path[:0] = [str(DEMO_DIR), str(ROOT)]
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo_project.settings"
    import django

    django.setup()


def prepare_database() -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import DatabaseError, connection

    name = connection.settings_dict["NAME"]
    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        raise SetUpError(
            f"cannot connect to database {name!r} (DATABASE_URL): {exc}".strip()
        ) from exc
    say("demo", "applying migrations ...")
    try:
        call_command("migrate", interactive=False, verbosity=0)
    except DatabaseError as exc:
        raise SetUpError(
            f"migrate failed on database {name!r}: {exc}".strip()
            + "\nIf that database was made by an older version of the demo, drop it "
            f"(dropdb {name}) and run make demo again."
        ) from exc

    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=DEMO_USER)
    user.is_staff = user.is_superuser = True
    user.set_password(DEMO_PASSWORD)
    user.save()
    say(
        "demo",
        f"superuser {DEMO_USER!r}, password {DEMO_PASSWORD!r} "
        f"(demo account — do not use outside this demo)",
    )


def dashboard_path() -> str:
    from django.urls import reverse

    return reverse("admin:dpq_job_changelist")


def server_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def first_exited(children: list[Child]) -> Child | None:
    return next((c for c in children if c.exit_code() is not None), None)


def wait_for_server(port: int, web: Child, stop: Stop) -> Child | None:
    """Wait until the web server accepts connections; return it if it exits instead."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not stop.requested:
        if web.exit_code() is not None:
            return web
        if server_answers(port):
            return None
        if time.monotonic() > deadline:
            say("demo", f"web does not answer after {SERVER_START_TIMEOUT} s")
            return web
        stop.sleep(0.2)
    return None


# --- Main loop -----------------------------------------------------------------------


class Stop:
    """The first SIGINT/SIGTERM asks for a clean stop; a second one kills the children.

    The handler takes no lock (no Event, no print): it runs in the main thread between
    two bytecodes, maybe while that thread holds the very lock it would wait for.
    """

    def __init__(self, children: list[Child]) -> None:
        self.signals = 0
        self.children = children

    @property
    def requested(self) -> bool:
        return self.signals > 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            for child in self.children:
                child.signal_group(signal.SIGKILL)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less once a stop is requested."""
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("DPQ_DEMO_PORT") or None,
        help=f"port of the web server (env DPQ_DEMO_PORT; default {DEFAULT_PORT}, "
        f"or the next free one)",
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        print(
            "run_demo: DATABASE_URL is not set. Run `make demo`, which finds or starts a "
            "PostgreSQL, or set DATABASE_URL=postgres://user@host:5432/dbname.",
            file=sys.stderr,
        )
        return 2

    try:
        port = choose_port(args.port)
        set_up_django()
        from demo import workload
        from django.db import DatabaseError, connection

        prepare_database()
        rng = random.Random()
        workload.create_accounts()
        say("demo", f"enqueued {workload.enqueue_mix(rng)} jobs")
        url = f"http://{HOST}:{port}{dashboard_path()}"
    except KeyboardInterrupt:
        say("demo", "interrupted before anything was started")
        return 0
    except SetUpError as exc:
        print(f"run_demo: {exc}", file=sys.stderr)
        return 1

    children = build_children(port)
    stop = Stop(children)
    signal.signal(signal.SIGINT, stop.handle)
    signal.signal(signal.SIGTERM, stop.handle)
    # The web server first, so that the dashboard's address is printed before the
    # workers' log lines start to flow.
    env = child_env()
    web, *workers = children
    web.start(env)
    failed = wait_for_server(port, web, stop)
    if failed is None and not stop.requested:
        say("demo", "")
        say("demo", f"Dashboard: {url}")
        say(
            "demo",
            f"Login:     {DEMO_USER} / {DEMO_PASSWORD}  "
            f"(demo account — do not use outside this demo)",
        )
        say("demo", "Enqueueing a few jobs a second. Press Ctrl-C to stop.")
        say("demo", "")
        for child in workers:
            child.start(env)
    while failed is None and not stop.requested:
        try:
            workload.enqueue_trickle(rng)
        except DatabaseError as exc:
            say("demo", f"could not enqueue: {exc}".strip())
            connection.close()
        stop.sleep(TRICKLE_INTERVAL)
        failed = first_exited(children)

    if failed is not None and failed.exit_code() is None:
        say("demo", f"stopping the demo: {failed.name} failed to start")
    elif failed is not None:
        say(
            "demo",
            f"{failed.name} exited unexpectedly with status {failed.exit_code()}; "
            f"stopping the demo",
        )
    else:
        say(
            "demo",
            f"stopping: workers finish their running jobs (up to {WORKER_GRACE} s)",
        )
    clean = stop_children(children)
    if stop.signals > 1:
        say("demo", "stopped at once on the second signal")
    connection.close()
    if failed is not None or not clean:
        return 1
    say("demo", "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
