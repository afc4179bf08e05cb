"""Argument types the management commands share (light: a health probe imports it)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def seconds_type(op: str, bound: float) -> Callable[[str], float]:
    """An argparse type for seconds ``op`` (">" or ">=") ``bound``; NaN is refused."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number of seconds, got {value!r}"
            ) from None
        if not (number > bound if op == ">" else number >= bound):
            raise argparse.ArgumentTypeError(
                f"expected seconds {op} {bound:g}, got {value}"
            )
        return number

    return parse
