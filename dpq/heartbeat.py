"""The heartbeat file of ``dpq_worker --heartbeat-file PATH``, and its check by dpq_health.

A worker process rewrites PATH every HEARTBEAT_INTERVAL seconds from its dispatcher loop
(the main thread, which wakes the job threads and checks the database for due jobs): a
fresh file says that loop turns. It holds one JSON object: the process, its threads (busy
and idle), when it was written and when the loop last reached the database. Under
``--processes`` the supervisor writes PATH, naming its worker processes, and each of them
writes ``PATH.<pid>``; the supervisor removes a child's file when it reaps the child.

Each write goes to a temporary file renamed over PATH, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

HEARTBEAT_INTERVAL = 2.0
# dpq_health's default: how old a heartbeat may be before the worker counts as stuck.
DEFAULT_MAX_AGE = 30.0


class HeartbeatError(Exception):
    """A heartbeat file that is missing, unreadable, stale, or names a process that is gone."""


@dataclass
class Beat:
    pid: int
    host: str
    queue: str
    role: str  # "worker" or "supervisor"
    written_at: float  # time.time()
    threads: int = 0
    busy: int = 0
    idle: int = 0
    # When the dispatcher loop last ran without a database error (time.time()), and the
    # error it met since, if any.
    database_ok_at: float | None = None
    database_error: str = ""
    children: list[int] = field(default_factory=list)


def child_path(path: str, pid: int) -> str:
    return f"{path}.{pid}"


def write(path: str, beat: Beat) -> None:
    """Replace the heartbeat file at ``path`` with ``beat``, atomically."""
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w") as out:
        json.dump(asdict(beat), out)
    os.replace(temporary, path)


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def read(path: str) -> Beat:
    try:
        with open(path) as source:
            data: dict[str, Any] = json.load(source)
        return Beat(**data)
    except FileNotFoundError:
        raise HeartbeatError(
            f"no heartbeat file at {path}: is a worker running with "
            f"--heartbeat-file {path}?"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise HeartbeatError(f"cannot read the heartbeat file {path}: {exc}") from exc


def check(path: str, max_age: float = DEFAULT_MAX_AGE) -> list[Beat]:
    """The beats of the worker at ``path`` (a supervisor's children too); raise if one is unwell."""
    beat = read(path)
    _check_one(path, beat, max_age)
    beats = [beat]
    for pid in beat.children:
        child = read(child_path(path, pid))
        _check_one(child_path(path, pid), child, max_age)
        beats.append(child)
    return beats


def _check_one(path: str, beat: Beat, max_age: float) -> None:
    age = time.time() - beat.written_at
    if age > max_age:
        raise HeartbeatError(
            f"the heartbeat in {path} is {age:.0f}s old (more than {max_age:g}s): worker "
            f"process {beat.pid} on {beat.host} is stuck or gone"
        )
    if beat.host == socket.gethostname() and not _alive(beat.pid):
        raise HeartbeatError(
            f"worker process {beat.pid} of the heartbeat in {path} is gone"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
