"""Budget and report periods: UTC days, weeks (from Monday) and months. Pure.

One clock for every site and user: a period in UTC starts and ends at the same moment for
everyone, so a group's budget cannot be stretched by members in different time zones.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

PERIODS = ("day", "week", "month")

# English names, not strftime's: the hub's locale must not change what users read.
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _check(period: str) -> None:
    if period not in PERIODS:
        raise ValueError(f"The period must be day, week or month, not {period!r}.")


def _start_and_end(period: str, now: float) -> tuple[datetime, datetime]:
    _check(period)
    day = datetime.fromtimestamp(now, tz=timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    first = day.replace(day=1)
    if first.month == 12:
        return first, first.replace(year=first.year + 1, month=1)
    return first, first.replace(month=first.month + 1)


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """Start (inclusive) and end (exclusive), in epoch seconds, of the period holding `now`."""
    start, end = _start_and_end(period, now)
    return start.timestamp(), end.timestamp()


def describe_reset(period: str, now: float) -> str:
    """When the current period ends, for users: "tomorrow at 00:00 UTC", "on Monday
    7 December at 00:00 UTC", "on 1 January at 00:00 UTC"."""
    _, end = _start_and_end(period, now)
    if period == "day":
        return "tomorrow at 00:00 UTC"
    month = _MONTHS[end.month - 1]
    if period == "week":
        return f"on {_WEEKDAYS[end.weekday()]} {end.day} {month} at 00:00 UTC"
    return f"on {end.day} {month} at 00:00 UTC"
