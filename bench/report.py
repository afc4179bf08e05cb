"""Figures, the table they print as, and the JSON they are saved as."""

from __future__ import annotations

import datetime
import json
import operator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"

_OPERATORS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt}


@dataclass(frozen=True)
class Target:
    """A pass/fail bound on a figure's value or on its ratio to the baseline."""

    op: str
    bound: float
    on: str = "ratio"  # "ratio" or "value"

    def check(self, value: float, ratio: float | None) -> bool | None:
        subject = ratio if self.on == "ratio" else value
        if subject is None:
            return None
        return _OPERATORS[self.op](subject, self.bound)

    def __str__(self) -> str:
        what = "ratio" if self.on == "ratio" else "value"
        return f"{what} {self.op} {self.bound:g}"


@dataclass
class Figure:
    section: str
    name: str
    value: float | None
    unit: str
    samples: list[float] = field(default_factory=list)
    baseline_name: str = ""
    baseline_value: float | None = None
    target: Target | None = None
    note: str = ""
    detail: str = ""  # printed below the table (a query plan)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.target.check(self.value, self.ratio)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = str(self.target) if self.target else None
        data["ratio"] = self.ratio
        data["passed"] = self.passed
        return data


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    """A Markdown table: readable in a terminal, pasteable into the README."""
    header = ["figure", "value", "unit", "baseline", "ratio", "target", "result"]
    rows = [header, ["---"] * len(header)]
    for f in figures:
        baseline = (
            f"{f.baseline_name} ({_number(f.baseline_value)})"
            if f.baseline_name
            else ""
        )
        result = {True: "pass", False: "**MISS**", None: ""}[f.passed]
        value = _number(f.value) if f.value is not None else f"skipped: {f.note}"
        rows.append(
            [
                f.name,
                value,
                f.unit if f.value is not None else "",
                baseline,
                f"{f.ratio:.2f}" if f.ratio is not None else "",
                str(f.target) if f.target else "",
                result,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        if row[0] == "---":
            row = ["-" * w for w in widths]
        lines.append(
            "| "
            + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            + " |"
        )
    return "\n".join(lines)


def notes(figures: list[Figure]) -> str:
    lines = [f"- {f.name}: {f.note}" for f in figures if f.note and f.value is not None]
    for f in figures:
        if f.detail:
            lines += [
                "",
                f"{f.name}:",
                "",
                *("    " + line for line in f.detail.splitlines()),
            ]
    return "\n".join(lines)


def save(figures: list[Figure], meta: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(
        json.dumps(
            {"meta": meta, "figures": [f.as_json() for f in figures]},
            indent=2,
            default=str,
        )
    )
    return path
