"""``manage.py dpq_health``: an exit code for liveness and readiness probes.

Exit codes: 0 healthy; 1 the database does not answer; 2 the worker's heartbeat file is
missing or stale, or names a process that is gone (see dpq/heartbeat.py); 3 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand
from django.db import DatabaseError, connections

from dpq import heartbeat, sql
from dpq.arguments import seconds_type

HEALTHY = 0
DATABASE_DOWN = 1
WORKER_UNWELL = 2
BAD_USAGE = 3


positive_seconds = seconds_type(">", 0)


class Command(BaseCommand):
    help = (
        "Exit 0 when the database answers and the worker writing --heartbeat-file is "
        "alive; 1 when the database does not answer, 2 when the worker's heartbeat is "
        "missing or stale. For liveness and readiness probes."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--heartbeat-file",
            metavar="PATH",
            default=None,
            help="The file a worker started with --heartbeat-file PATH writes; without "
            "it, only the database is checked.",
        )
        parser.add_argument(
            "--max-age",
            type=positive_seconds,
            default=heartbeat.DEFAULT_MAX_AGE,
            metavar="SECONDS",
            help="How old the heartbeat may be (default %(default)gs; the worker writes "
            "it every 2s).",
        )
        parser.add_argument(
            "--no-database",
            action="store_true",
            help="Do not connect to the database (a liveness probe that must not fail "
            "while the database is away: the worker waits and reconnects by itself).",
        )
        parser.add_argument(
            "--database",
            default="default",
            help="The database alias to check (default 'default').",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["no_database"] and options["heartbeat_file"] is None:
            self.stderr.write(
                "dpq_health: --no-database leaves nothing to check: give "
                "--heartbeat-file PATH"
            )
            sys.exit(BAD_USAGE)
        code = HEALTHY
        if not options["no_database"]:
            code = self.check_database(options["database"])
        if code == HEALTHY and options["heartbeat_file"] is not None:
            code = self.check_worker(options["heartbeat_file"], options["max_age"])
        if code != HEALTHY:
            sys.exit(code)

    def check_database(self, using: str) -> int:
        started = time.monotonic()
        try:
            sql.fetch_one(using, sql.DATABASE_PING)
        except DatabaseError as exc:
            first = str(exc).strip().splitlines()
            self.stderr.write(
                f"dpq_health: the database does not answer: {first[0] if first else exc!r}"
            )
            return DATABASE_DOWN
        finally:
            connections[using].close()
        self.stdout.write(
            f"database: ok ({(time.monotonic() - started) * 1000:.0f} ms)"
        )
        return HEALTHY

    def check_worker(self, path: str, max_age: float) -> int:
        try:
            beats = heartbeat.check(path, max_age)
        except heartbeat.HeartbeatError as exc:
            self.stderr.write(f"dpq_health: {exc}")
            return WORKER_UNWELL
        for beat in beats:
            age = time.time() - beat.written_at
            detail = (
                f"{len(beat.children)} worker process(es)"
                if beat.role == "supervisor"
                else f"{beat.busy} of {beat.threads} thread(s) busy"
            )
            database = (
                f"; database error: {beat.database_error}"
                if beat.database_error
                else ""
            )
            self.stdout.write(
                f"{beat.role} {beat.pid} on {beat.host}, queue {beat.queue!r}: ok, "
                f"heartbeat {age:.1f}s old, {detail}{database}"
            )
        return HEALTHY
