"""Where a dashboard page spends its time: server time, and each statement's share.

    DATABASE_URL=... python bench/pages.py [--jobs N] [--rounds N] [--keep] [--migrate] [--hold]

Fills the job table to ``--jobs`` (in the proportions of bench/scale.py: 1M queued :
1M delayed : 100k failed, 3 queues), unless it already holds that many, loads every page
``--rounds`` times and prints, per page, the median server time, the time spent in SQL
and the slowest statements. ``--keep`` leaves the table filled for the next run (a fill
of 2.1M rows takes a minute); ``--migrate`` starts from an empty schema; ``--hold`` keeps
one ready job's row locked by another connection meanwhile, as a worker's claim does, so
that pages call pgrowlocks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class StatementTimer:
    """An execute_wrapper that times each statement a page runs."""

    def __init__(self) -> None:
        self.times: list[tuple[float, str]] = []

    def __call__(self, execute: Any, statement: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(statement, *args)
        finally:
            self.times.append(((time.perf_counter() - started) * 1000, statement))


def page_urls() -> list[tuple[str, str]]:
    from django.urls import reverse

    from bench import harness

    job_id = harness.fetch_all(
        "SELECT max(id) FROM dpq_job WHERE failed_at IS NULL AND execute_at > now()"
    )[0][0]
    urls = [("dashboard", reverse("admin:dpq_job_changelist"))]
    for name in ("queued", "running", "delayed", "failed", "all"):
        urls.append((f"{name} list", reverse(f"admin:dpq_job_{name}")))
    urls.append(("queued list, page 2", reverse("admin:dpq_job_queued") + "?page=2"))
    urls.append(("job page", reverse("admin:dpq_job_job", args=[job_id])))
    return urls


def measure(client: Any, url: str, rounds: int) -> tuple[float, float, list]:
    from django.db import connection

    client.get(url)
    totals, sql_totals, slowest = [], [], {}
    for _ in range(rounds):
        timer = StatementTimer()
        started = time.perf_counter()
        with connection.execute_wrapper(timer):
            response = client.get(url)
        totals.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        sql_totals.append(sum(ms for ms, _ in timer.times))
        for ms, statement in timer.times:
            key = " ".join(statement.split())[:90]
            slowest.setdefault(key, []).append(ms)
    top = sorted(((statistics.median(v), k) for k, v in slowest.items()), reverse=True)[
        :4
    ]
    return statistics.median(totals), statistics.median(sql_totals), top


def hold_a_job() -> Any:
    """A connection of its own whose open transaction locks one ready job's row."""
    from dpq import driver

    conn = driver.connect(os.environ["DATABASE_URL"])
    with conn.cursor() as cursor:
        cursor.execute("SET application_name = 'dpq:bench:benchhost:1:t1'")
        cursor.execute(
            "SELECT id FROM dpq_job WHERE failed_at IS NULL AND execute_at <= now() "
            "LIMIT 1 FOR UPDATE"
        )
    return conn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2_100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--migrate", action="store_true")
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    if args.migrate:
        from bench.run import migrate

        migrate()
    import django

    django.setup()
    from bench import harness, scale

    harness.create_tables()
    big = (1_000_000, 1_000_000, 100_000)
    wanted = tuple(round(part * args.jobs / sum(big)) for part in big)
    have = harness.fetch_all(
        """SELECT count(*) FILTER (WHERE failed_at IS NULL AND execute_at <= now()),
                  count(*) FILTER (WHERE failed_at IS NULL AND execute_at > now()),
                  count(*) FILTER (WHERE failed_at IS NOT NULL) FROM dpq_job"""
    )[0]
    if tuple(have) != wanted:
        harness.reset()
        print(f"filling to {args.jobs:,} jobs {wanted}", file=sys.stderr, flush=True)
        scale.fill_to(*wanted, (0, 0, 0))
    client = scale.dashboard_client()
    holder = hold_a_job() if args.hold else None
    try:
        for label, url in page_urls():
            total, in_sql, top = measure(client, url, args.rounds)
            print(f"{label:22} {total:7.1f} ms  (SQL {in_sql:6.1f} ms)")
            for ms, statement in top:
                print(f"{'':24}{ms:6.1f} ms  {statement}")
    finally:
        if holder is not None:
            holder.close()
        if not args.keep:
            harness.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
