"""A big table: the claim's plan and timing, and the dashboard's pages, as the table grows.

The table is filled in stages by INSERT ... SELECT generate_series, in the proportions of
the largest one (1,000,000 queued : 1,000,000 delayed : 100,000 failed, over 3 queues), and
emptied at the end.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.urls import NoReverseMatch, reverse

from bench import harness, queues
from bench.pages import hold_a_job
from bench.report import Figure, Target
from dpq import sql

SECTION = "scale"
QUEUE_NAMES = [queues.NAME, "bench-b", "bench-c"]
# Server time per dashboard page, median: at 10k jobs and at the biggest stage (2.1M).
PAGE_MS_SMALL = 50
PAGE_MS_BIG = 250

DASHBOARD_PAGES = [
    ("dashboard", "admin:dpq_job_changelist"),
    ("queued list", "admin:dpq_job_queued"),
    ("running list", "admin:dpq_job_running"),
    ("delayed list", "admin:dpq_job_delayed"),
    ("failed list", "admin:dpq_job_failed"),
    ("all jobs list", "admin:dpq_job_all"),
    ("job page", "admin:dpq_job_job"),
]


def fill_to(queued: int, delayed: int, failed: int, have: tuple[int, int, int]) -> None:
    """Add rows until the table holds this many jobs in each state; VACUUM ANALYZE."""
    harness.insert_jobs(queued - have[0], queues_round_robin=QUEUE_NAMES)
    harness.insert_jobs(
        delayed - have[1], delay="1 day", queues_round_robin=QUEUE_NAMES
    )
    harness.insert_jobs(failed - have[2], failed=True, queues_round_robin=QUEUE_NAMES)
    harness.settle()


def explain(statement: str, params: dict[str, Any]) -> tuple[dict, str]:
    """EXPLAIN (ANALYZE, BUFFERS) a statement in a transaction that is rolled back."""
    rendered = sql.render(statement)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + rendered, params
            )
            plan = cursor.fetchone()[0]
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + rendered, params)
            text = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    if isinstance(plan, str):
        plan = json.loads(plan)
    return plan[0], text


def bad_nodes(node: dict, table: str = "dpq_job") -> list[str]:
    """Seq Scans of the table, and Sorts with a scan of the table beneath them."""

    def scans_table(n: dict) -> bool:
        # Only the rows flowing into a node: InitPlans and CTEs run apart (the claim's
        # final Sort orders the claimed rows, read from the CTE, not the table).
        return n.get("Relation Name") == table or any(
            scans_table(c)
            for c in n.get("Plans", [])
            if c.get("Parent Relationship") not in ("InitPlan", "SubPlan")
        )

    found = []
    if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == table:
        found.append(f"Seq Scan on {table}")
    if node["Node Type"] == "Sort" and scans_table(node):
        found.append(f"Sort over {table}")
    for child in node.get("Plans", []):
        found.extend(bad_nodes(child, table))
    return found


CLAIMS = [
    (
        "claim, 1 job",
        sql.CLAIM_JOB,
        {"queue": queues.NAME, "exclude_ids": []},
    ),
    (
        "claim, 100 jobs",
        sql.CLAIM_JOBS,
        {"queue": queues.NAME, "exclude_ids": [], "limit": 100},
    ),
    ("idle check for due jobs", sql.CHECK_DUE_JOBS, {"queue": queues.NAME}),
]


def measure_claims(rounds: int) -> dict[str, tuple[list[float], list[str], str]]:
    results = {}
    for label, statement, params in CLAIMS:
        explain(statement, params)  # warm the cache: every size is measured warm
        times, bad, text = [], [], ""
        for _ in range(rounds):
            plan, text = explain(statement, params)
            times.append(plan["Execution Time"])
            bad = bad_nodes(plan["Plan"])
        results[label] = (times, bad, text)
    return results


def measure_drained_check(rounds: int) -> tuple[list[float], list[str], str]:
    """The idle check right after the queue's ready jobs are gone, on stale statistics."""
    harness.execute(
        "DELETE FROM dpq_job WHERE queue = %s AND failed_at IS NULL AND execute_at <= now()",
        [queues.NAME],
    )
    params = {"queue": queues.NAME}
    explain(sql.CHECK_DUE_JOBS, params)
    times, bad, text = [], [], ""
    for _ in range(rounds):
        plan, text = explain(sql.CHECK_DUE_JOBS, params)
        times.append(plan["Execution Time"])
        bad = bad_nodes(plan["Plan"])
    return times, bad, text


def dashboard_client() -> Any:
    if not getattr(settings, "HAS_DASHBOARD", False):
        return None
    try:
        reverse("admin:dpq_job_changelist")
    except NoReverseMatch:
        return None
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


class QueryCounter:
    """An execute_wrapper that keeps the statements a page runs."""

    def __init__(self, statements: list[str]) -> None:
        self.statements = statements

    def __call__(self, execute: Any, statement: str, *args: Any) -> Any:
        self.statements.append(statement)
        return execute(statement, *args)


def measure_pages(client: Any, rounds: int) -> dict[str, tuple[list[float], int]]:
    job_id = harness.fetch_all("SELECT max(id) FROM dpq_job")[0][0]
    results = {}
    for label, name in DASHBOARD_PAGES:
        try:
            url = reverse(name, args=[job_id] if name.endswith("_job") else [])
        except NoReverseMatch:
            continue
        client.get(url)
        times = []
        queries: list[str] = []
        with connection.execute_wrapper(QueryCounter(queries)):
            response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        for _ in range(rounds):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        results[label] = (times, len(queries))
    return results


def scale_figures(rounds: int, *, quick: bool = False) -> list[Figure]:
    big = (100_000, 100_000, 10_000) if quick else (1_000_000, 1_000_000, 100_000)
    stages = (
        [("10k", 10_000)]
        + ([] if quick else [("1M", 1_000_000)])
        + [(f"{sum(big) / 1e6:g}M", sum(big))]
    )
    harness.reset()
    client = dashboard_client()
    have = (0, 0, 0)
    claims: dict[str, dict] = {}
    pages: dict[str, dict] = {}
    for label, total in stages:
        wanted = tuple(round(part * total / sum(big)) for part in big)
        print(f"  filling to {total:,} jobs {wanted}", file=sys.stderr, flush=True)
        started = time.monotonic()
        fill_to(*wanted, have)
        have = wanted
        print(
            f"  filled in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        claims[label] = measure_claims(rounds)
        if client is not None:
            pages[label] = measure_pages(client, rounds)
            # The same with a worker's claim open: a row is locked, so pgrowlocks runs.
            holder = hold_a_job()
            try:
                pages[f"{label}, a row locked"] = measure_pages(client, rounds)
            finally:
                holder.close()
    drained = measure_drained_check(rounds)
    harness.reset()

    first, last = stages[0][0], stages[-1][0]
    figures = []
    for claim_label, _, _ in CLAIMS:
        small_times = claims[first][claim_label][0]
        times, bad, text = claims[last][claim_label]
        figures.append(
            Figure(
                SECTION,
                f"{claim_label}: execution time at {last} jobs",
                statistics.median(times),
                "ms",
                times,
                f"at {first} jobs",
                statistics.median(small_times),
                note="EXPLAIN (ANALYZE, BUFFERS), warm cache; plan below the table",
            )
        )
        figures.append(
            Figure(
                SECTION,
                f"{claim_label}: Seq Scan / Sort nodes on dpq_job at {last} jobs",
                float(len(bad)),
                "nodes",
                target=Target("<=", 0, "value"),
                note="; ".join(bad) or "index scans only",
            )
        )
        figures[-1].detail = text
    times, bad, text = drained
    figures.append(
        Figure(
            SECTION,
            f"idle check for due jobs, queue just drained, at {last} jobs",
            statistics.median(times),
            "ms",
            times,
            f"at {first} jobs",
            statistics.median(claims[first]["idle check for due jobs"][0]),
            note=(
                "the queue's ready rows deleted, statistics not yet refreshed (a backlog "
                "just drained, before autovacuum's ANALYZE): "
                + ("; ".join(bad) or "index scans only")
            ),
            detail=text,
        )
    )
    if client is None:
        figures.append(
            Figure(
                SECTION,
                "dashboard pages",
                None,
                "",
                note="skipped: dpq_admin is not installed or its admin URLs do not resolve",
            )
        )
        return figures
    small, big_page = (
        Target("<=", PAGE_MS_SMALL, "value"),
        Target("<=", PAGE_MS_BIG, "value"),
    )
    for page, _ in DASHBOARD_PAGES:
        shown = [(first, f"{first} jobs", small)]
        shown.append((f"{first}, a row locked", f"{first} jobs, a row locked", small))
        shown += [(name, f"{name} jobs", None) for name, _ in stages[1:-1]]
        shown.append((last, f"{last} jobs", big_page))
        shown.append((f"{last}, a row locked", f"{last} jobs, a row locked", big_page))
        for label, text, target in shown:
            if page not in pages[label]:
                continue
            times, count = pages[label][page]
            baseline = label != first
            figures.append(
                Figure(
                    SECTION,
                    f"dashboard {page} at {text}",
                    statistics.median(times),
                    "ms",
                    times,
                    f"at {first}" if baseline else "",
                    statistics.median(pages[first][page][0]) if baseline else None,
                    target,
                    note=f"{count} queries (at {first}: {pages[first][page][1]})",
                )
            )
    return figures
