"""Schedule functions of the original package: each takes the previous due time and returns
the next one, strictly later. Time zones may be zoneinfo or pytz zones; pytz is not needed.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

Rule = Callable[[datetime.datetime], datetime.datetime]


def combine(
    date: datetime.date, time: datetime.time, tzinfo: datetime.tzinfo
) -> datetime.datetime:
    """``datetime.combine`` that is right across DST changes, for pytz and zoneinfo zones.

    A time that a spring-forward skips, or that a fall-back repeats, is read in standard
    time, as pytz's ``localize()`` does by default: both kinds of zone give the same moment.
    """
    naive = datetime.datetime.combine(date, time)
    localize = getattr(tzinfo, "localize", None)
    if localize is not None:  # pytz: its zones must not be passed as tzinfo= directly
        return localize(naive)
    first = naive.replace(tzinfo=tzinfo)
    second = first.replace(fold=1)
    chosen = first
    if first.utcoffset() != second.utcoffset() and second.dst() == datetime.timedelta(
        0
    ):
        chosen = second
    # Through UTC and back: a skipped time becomes the wall-clock time it really is.
    return chosen.astimezone(datetime.UTC).astimezone(tzinfo)


def repeater(delta: datetime.timedelta) -> Rule:
    """Every ``delta``, counted from the previous due time."""

    def schedule(previous: datetime.datetime) -> datetime.datetime:
        return previous + delta

    return schedule


def every_day_at(time: datetime.time, tz: datetime.tzinfo) -> Rule:
    """Every day at ``time`` in ``tz`` (once a day, also on the days the clocks change)."""

    def schedule(previous: datetime.datetime) -> datetime.datetime:
        day = previous.astimezone(tz).date()
        todays = combine(day, time, tz)
        if previous < todays:
            return todays
        return combine(day + datetime.timedelta(days=1), time, tz)

    return schedule


def every_dow_at(dow: int, at: datetime.time, tz: datetime.tzinfo) -> Rule:
    """Every week on weekday ``dow`` (0 is Monday) at ``at`` in ``tz``."""

    def schedule(previous: datetime.datetime) -> datetime.datetime:
        day = previous.astimezone(tz).date()
        monday = day - datetime.timedelta(days=day.weekday())
        this_weeks = combine(monday + datetime.timedelta(days=dow), at, tz)
        if previous < this_weeks:
            return this_weeks
        return combine(monday + datetime.timedelta(days=7 + dow), at, tz)

    return schedule
