"""``manage.py dpq_status``: jobs per queue and state, the workers connected, the schedules."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from dpq.arguments import seconds_type
from dpq.models import Job
from dpq.status import Status, read_status


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


refresh_seconds = seconds_type(">=", 0.1)


def render(status: Status) -> str:
    """The status as a few plain-text tables."""
    lines = []
    limit = status.limit

    def count(queue: Any, state: str) -> str:
        return f">{limit}" if queue.more_than(state) else str(getattr(queue, state))

    lines.append(
        f"{'queue':<24} {'queued':>9} {'running':>8} {'delayed':>9} {'failed':>9}  oldest queued"
    )
    for queue in status.queues:
        lines.append(
            f"{queue.name:<24} {count(queue, 'queued'):>9} {queue.running:>8} "
            f"{count(queue, 'delayed'):>9} {count(queue, 'failed'):>9}  "
            f"{seconds_text(queue.oldest_queued_seconds)}"
        )
    if not status.queues:
        lines.append("(no jobs)")
    lines.append(f"running jobs from: {status.running_source}")
    lines.append("")
    lines.append("workers:")
    for process in status.workers:
        others = ", ".join(process.roles) or "-"
        lines.append(
            f"  {process.host} pid {process.pid} queue {process.queue!r}: "
            f"{process.threads} thread(s), {process.busy} busy; also {others}"
        )
        for connection in process.connections:
            jobs = ", ".join(connection.jobs)
            if connection.is_busy or jobs:
                since = seconds_text(connection.in_transaction_seconds)
                lines.append(
                    f"    {connection.role}: {jobs or 'in a claim'} (for {since})"
                )
    if not status.workers:
        lines.append("  (none connected)")
    lines.append("")
    lines.append("paused queues: " + (", ".join(status.paused_queues) or "none"))
    if status.schedules:
        lines.append("schedules:")
        for schedule in status.schedules:
            state = (
                "paused"
                if schedule.paused
                else f"behind {seconds_text(schedule.lag_seconds)}"
            )
            due = schedule.next_due_at.isoformat() if schedule.next_due_at else "-"
            lines.append(
                f"  {schedule.queue}: {schedule.name}, next due {due}, {state}"
            )
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Show jobs per queue and state (queued, running, delayed, failed), the oldest "
        "queued job, the workers connected and the schedules."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--watch",
            nargs="?",
            type=refresh_seconds,
            const=2.0,
            default=None,
            metavar="SECONDS",
            help="Refresh every SECONDS (default 2) until Ctrl-C.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON object (per refresh)."
        )
        parser.add_argument(
            "--database",
            default="default",
            help="The database alias to read (default 'default').",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            while True:
                try:
                    status = read_status(options["database"], Job._meta.db_table)
                except DatabaseError as exc:
                    raise CommandError(
                        f"cannot read the queue's status: {str(exc).strip()}"
                    ) from exc
                if options["json"]:
                    self.stdout.write(json.dumps(status.to_json()))
                else:
                    if options["watch"] is not None and self.stdout.isatty():
                        self.stdout.write("\033[H\033[2J", ending="")
                    self.stdout.write(f"dpq status at {status.read_at.isoformat()}")
                    self.stdout.write(render(status))
                if options["watch"] is None:
                    return
                self.stdout.flush()
                time.sleep(options["watch"])
        except KeyboardInterrupt:
            return
