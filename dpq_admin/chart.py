"""The dashboard's throughput chart: jobs done and failed per minute over the last day, as SVG.

Drawn on the server from dpq_throughput (one query, at most 1,440 rows per queue), so the
page loads nothing from elsewhere. Every value in the markup is a number or escaped text.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from dpq import sql

MINUTES = 24 * 60
WIDTH = 720
HEIGHT = 160


@dataclass
class Throughput:
    """The last day per minute, all queues together; ``by_queue`` totals (done, failed)."""

    done: list[int]
    failed: list[int]
    by_queue: dict[str, tuple[int, int]]
    now: datetime.datetime

    @property
    def total_done(self) -> int:
        return sum(self.done)

    @property
    def total_failed(self) -> int:
        return sum(self.failed)


def read_throughput(using: str = "default") -> Throughput:
    """The last 24 hours from dpq_throughput (one query; the table is dpq's migration 0008)."""
    rows = sql.fetch_all(using, sql.THROUGHPUT_SINCE)
    now = rows[0][4] if rows else timezone.now()
    done, failed = [0] * MINUTES, [0] * MINUTES
    by_queue: dict[str, tuple[int, int]] = {}
    for queue, minute, done_count, failed_count, _ in rows:
        slot = MINUTES - 1 - int((now - minute).total_seconds() // 60)
        if 0 <= slot < MINUTES:
            done[slot] += done_count
            failed[slot] += failed_count
        old = by_queue.get(queue, (0, 0))
        by_queue[queue] = (old[0] + done_count, old[1] + failed_count)
    return Throughput(done, failed, dict(sorted(by_queue.items())), now)


def _points(values: list[int], top: int) -> str:
    step = WIDTH / (MINUTES - 1)
    return " ".join(
        f"{n * step:.1f},{HEIGHT - value * HEIGHT / top:.1f}"
        for n, value in enumerate(values)
    )


def render_svg(throughput: Throughput) -> SafeString:
    """A line per series (done, failed) over 1,440 minutes, the scale's top labelled."""
    top = max(1, *throughput.done, *throughput.failed)
    hours = format_html_join(
        "",
        '<line x1="{0}" y1="0" x2="{0}" y2="{1}" class="dpq-chart-grid"/>'
        '<text x="{0}" y="{2}" class="dpq-chart-label">-{3}h</text>',
        (
            (f"{WIDTH - h * 60 * WIDTH / (MINUTES - 1):.1f}", HEIGHT, HEIGHT + 14, h)
            for h in (24, 18, 12, 6)
        ),
    )
    return format_html(
        '<svg class="dpq-chart" id="dpq-throughput-chart" role="img" '
        'viewBox="0 -16 {width} {height}" width="{width}" height="{full}" '
        'xmlns="http://www.w3.org/2000/svg">'
        "<title>Jobs done and failed per minute, last 24 hours (most in a minute: {top})</title>"
        '<text x="0" y="-4" class="dpq-chart-label">{top} per minute</text>'
        '<line x1="0" y1="{plot}" x2="{width}" y2="{plot}" class="dpq-chart-axis"/>'
        "{hours}"
        '<polyline class="dpq-chart-done" fill="none" stroke="#2a7d2a" points="{done}"/>'
        '<polyline class="dpq-chart-failed" fill="none" stroke="#ba2121" points="{failed}"/>'
        "</svg>",
        width=WIDTH,
        height=HEIGHT + 36,
        full=HEIGHT + 36,
        plot=HEIGHT,
        top=top,
        hours=hours,
        done=_points(throughput.done, top),
        failed=_points(throughput.failed, top),
    )
