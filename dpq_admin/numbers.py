"""Counts as the dashboard prints them: grouped as the current locale groups digits.

``format_count(1000000)`` is "1,000,000" in English; a count that stopped at its cap
says so: "more than 100,000".
"""

from __future__ import annotations

from django.utils.formats import number_format


def format_number(value: int) -> str:
    """``value`` with the active locale's thousand separator, whatever USE_THOUSAND_SEPARATOR."""
    return number_format(value, force_grouping=True)


def format_count(value: int, *, capped: bool = False) -> str:
    if capped:
        return f"more than {format_number(value)}"
    return format_number(value)
