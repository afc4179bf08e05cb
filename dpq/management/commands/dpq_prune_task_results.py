"""``manage.py dpq_prune_task_results [--backend ALIAS]``: forget old results of Django tasks."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dpq.commands import non_negative_float


class Command(BaseCommand):
    help = (
        "Delete the results of Django tasks (dpq.tasks.DpqBackend) that finished longer ago "
        "than the backend's result_retention. Results of failed jobs still kept in the "
        "queue are kept."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--backend",
            metavar="ALIAS",
            action="append",
            help="A TASKS alias (repeatable; default: every dpq backend).",
        )
        parser.add_argument(
            "--older-than",
            type=non_negative_float,
            metavar="SECONDS",
            help="Override result_retention for this run.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from dpq.tasks import DpqBackend, compat

        configured = getattr(settings, "TASKS", None) or {}
        aliases = options["backend"] or sorted(configured)
        older = options["older_than"]
        pruned_any = False
        for alias in aliases:
            if alias not in configured:
                raise CommandError(
                    f"--backend {alias!r}: TASKS has no backend by that name (known: "
                    f"{', '.join(sorted(configured)) or 'none'})"
                )
            backend = compat.task_backends[alias]
            if not isinstance(backend, DpqBackend):
                if options["backend"]:
                    raise CommandError(
                        f"--backend {alias!r} is a {type(backend).__name__}, not a "
                        f"dpq.tasks.DpqBackend"
                    )
                continue
            keep = None if older is None else datetime.timedelta(seconds=older)
            count = backend.prune_results(older_than=keep)
            pruned_any = True
            self.stdout.write(f"{alias}: deleted {count} task result(s)")
        if not pruned_any:
            raise CommandError("TASKS has no dpq.tasks.DpqBackend: nothing to prune")
