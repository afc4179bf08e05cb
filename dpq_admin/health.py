"""The Queue health page: what keeps the job table healthy, each with a hint of what to do.

Dead rows and the last (auto)vacuum of the job table, the oldest transaction holding back
vacuum, connections in use against ``max_connections``, and the table's and its indexes'
sizes. Every figure comes from a statistics view or a catalog (dpq/sql/health.py): the page
reads no row of the job table.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse

from dpq import sql
from dpq_admin import links, state
from dpq_admin.numbers import format_number
from dpq_admin.tables import format_duration

# Dead rows past this share of the live ones mean vacuum is behind.
DEAD_ROWS_WARNING = 0.2
# An open transaction older than this holds back vacuum long enough to matter.
OLD_TRANSACTION_SECONDS = 300
CONNECTIONS_WARNING = 0.8


@dataclass(frozen=True)
class Check:
    """One line of the page: what it measures, the figure, a hint, and whether to act."""

    key: str
    label: str
    value: str
    hint: str
    warning: bool = False


def _when(moment: datetime.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "never"


def vacuum_checks(using: str = "default") -> list[Check]:
    row = sql.fetch_one(
        using, sql.JOB_TABLE_STATS, {"table_name": state.job_table()}
    ) or (0, 0, None, None, None, None, 0)
    live, dead, vacuum, autovacuum, analyze, autoanalyze, _ = row
    behind = dead > max(live, 1) * DEAD_ROWS_WARNING and dead > 1000
    last = max((m for m in (vacuum, autovacuum) if m), default=None)
    return [
        Check(
            "dead-rows",
            "Dead rows in the job table",
            f"{format_number(dead)} dead, {format_number(live)} live",
            "Each job run leaves a dead row until vacuum removes it. Many: vacuum is "
            "behind; look at the oldest transaction below, or run VACUUM on the table."
            if behind
            else "Vacuum keeps up: dead rows are a small share of the table.",
            warning=behind,
        ),
        Check(
            "vacuum",
            "Last vacuum of the job table",
            f"{_when(last)} (automatic: {_when(autovacuum)}; last analyze: "
            f"{_when(max((m for m in (analyze, autoanalyze) if m), default=None))})",
            "Autovacuum runs after enough rows changed; a busy queue table is vacuumed "
            "often. Never vacuumed while jobs run: check that autovacuum is on.",
            warning=last is None and dead > 1000,
        ),
    ]


def transaction_check(using: str = "default") -> Check:
    row = sql.fetch_one(using, sql.OLDEST_TRANSACTION, {})
    if row is None:
        return Check(
            "oldest-transaction",
            "Oldest transaction",
            "none open",
            "Nothing holds back vacuum now.",
        )
    pid, application, client, session_state, _since, seconds, age = row
    who = application or "a connection without an application name"
    old = seconds is not None and seconds >= OLD_TRANSACTION_SECONDS
    return Check(
        "oldest-transaction",
        "Oldest transaction (holds back vacuum)",
        f"pid {pid}, {who}"
        + (f" from {client}" if client else "")
        + f", {session_state or 'state unknown'}, open for {format_duration(seconds)}"
        + (f", {format_number(age)} transactions old" if age is not None else ""),
        "While it stays open, vacuum removes no row that died after it began, in any "
        "table of the database. A dpq worker's claim lasts as long as its job; another "
        "application's may be forgotten: end it, or set "
        "idle_in_transaction_session_timeout."
        if old
        else "Short transactions hold back vacuum only briefly.",
        warning=old,
    )


def connection_check(using: str = "default") -> Check:
    in_use, maximum, reserved = sql.fetch_one(using, sql.CONNECTION_USE, {})
    usable = max(maximum - reserved, 1)
    crowded = in_use >= usable * CONNECTIONS_WARNING
    return Check(
        "connections",
        "Connections in use",
        f"{format_number(in_use)} of {format_number(maximum)} "
        f"({format_number(reserved)} reserved for superusers)",
        "Close to the limit, new connections (workers' too) are refused: use fewer "
        "worker threads, a pooler such as pgbouncer, or raise max_connections."
        if crowded
        else "Room for more workers and web processes.",
        warning=crowded,
    )


def size_checks(using: str = "default") -> list[Check]:
    rows = sql.fetch_all(using, sql.JOB_TABLE_SIZES, {"table_name": state.job_table()})
    table_bytes = next((size for _, size, kind in rows if kind == "table"), 0)
    checks = []
    for name, size, kind in rows:
        bloated = kind == "index" and size > max(table_bytes, 8 << 20)
        checks.append(
            Check(
                f"size-{name}",
                f"Size of {kind} {name}",
                filesizeformat(size),
                "Larger than the table itself: bloated; REINDEX INDEX CONCURRENTLY "
                "rebuilds it without blocking the workers."
                if bloated
                else (
                    "The rows on disk, dead ones included until vacuum reuses them."
                    if kind == "table"
                    else "In proportion to the table."
                ),
                warning=bloated,
            )
        )
    return checks


class JobAdminHealth:
    """The Queue health page of ``JobAdmin``."""

    def health_view(self, request: HttpRequest) -> HttpResponse:
        links.require_view_permission(self, request)
        checks = [
            *vacuum_checks(),
            transaction_check(),
            connection_check(),
            *size_checks(),
        ]
        context = {
            **links.page_context(self, request, "Queue health"),
            "checks": checks,
            "health_page": True,
        }
        return TemplateResponse(request, "dpq_admin/health.html", context)
