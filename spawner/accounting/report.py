"""The Usage view's figures from GPU holds: GPU-hours and idle GPU-hours per user, group or
profile, GPU-hours per UTC day, their CSV and a small SVG chart. Pure: holds in, data out.

A hold counts only for its part inside the period asked for (`Hold.overlap`); an open hold
counts up to `now`.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from .holds import Hold

BY = ("user", "group", "profile")
DAY = 86400.0
NO_GROUP = "(no group)"  # how the group key "" (a user in no group) is shown
NO_USE = "No GPU use in this period."
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_STARTS = frozenset("=+-@\t\r")


@dataclass(frozen=True)
class UsageRow:
    key: str
    gpu_seconds: float
    idle_seconds: float
    holds: int

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600

    @property
    def idle_hours(self) -> float:
        return self.idle_seconds / 3600


def _inside(hold: Hold, since: float, until: float, now: float) -> tuple[float, float]:
    """(GPU-seconds, idle seconds) of `hold` inside [since, until).

    Idle time is recorded per hold, not per moment, so the part of it inside the period is
    taken in proportion to the part of the hold inside the period.
    """
    # `Hold.overlap` and `Hold.held_seconds`, written out: this runs for every hold of a
    # year-long report, several times per request.
    end = hold.end if hold.end is not None else now
    seconds = min(end, until) - max(hold.start, since)
    if seconds <= 0:
        return 0.0, 0.0
    # Never more idle than held, whatever the looks added up to.
    return seconds, seconds * min(1.0, hold.idle_seconds / (end - hold.start))


def _keys(hold: Hold, by: str) -> Iterable[str]:
    if by == "user":
        return (hold.user,)
    if by == "profile":
        return (hold.profile,)
    # Each group once, even if listed twice; "" for a user in no group.
    return dict.fromkeys(hold.groups) or ("",)


def usage_by(
    holds: Iterable[Hold], by: str, since: float, until: float, now: float
) -> list[UsageRow]:
    """One row per user, group or profile (`by`) with use in [since, until), most used first.

    A hold counts in every group its user was in when it started; a user in no group counts
    under "". Idle seconds are recorded per hold, not per moment: a hold partly inside the
    period brings the same share of its idle time as of its held time. Holds outside the
    period are left out; `holds` counts those that overlap it.
    """
    if by not in BY:
        raise ValueError(f"Usage can be shown by user, group or profile, not {by!r}.")
    gpu: dict[str, float] = {}
    idle: dict[str, float] = {}
    count: dict[str, int] = {}
    for hold in holds:
        seconds, idle_seconds = _inside(hold, since, until, now)
        if seconds <= 0:
            continue
        for key in _keys(hold, by):
            gpu[key] = gpu.get(key, 0.0) + seconds
            idle[key] = idle.get(key, 0.0) + idle_seconds
            count[key] = count.get(key, 0) + 1
    rows = [UsageRow(key, gpu[key], idle[key], count[key]) for key in gpu]
    rows.sort(key=lambda r: (-r.gpu_seconds, r.key))
    return rows


def totals(holds: Iterable[Hold], since: float, until: float, now: float) -> UsageRow:
    """All use in [since, until) as one row, key "all" (each hold once, whatever its groups)."""
    gpu = idle = 0.0
    count = 0
    for hold in holds:
        seconds, idle_seconds = _inside(hold, since, until, now)
        if seconds > 0:
            gpu += seconds
            idle += idle_seconds
            count += 1
    return UsageRow("all", gpu, idle, count)


def daily_gpu_hours(
    holds: Iterable[Hold], since: float, until: float, now: float
) -> list[tuple[str, float]]:
    """GPU-hours per UTC day touching [since, until), as ("YYYY-MM-DD", hours) in date
    order, days without use included.

    Each hold is split across its days with arithmetic only: its first and last day get
    their parts, and the whole days between are counted once per day through a running
    sum, so a year of holds costs one pass over the holds and one over the days.
    """
    if until <= since:
        return []
    base = (since // DAY) * DAY  # midnight UTC of the first day
    days = int(-((base - until) // DAY))  # ceil: the last day may be partial
    seconds = [0.0] * (days + 1)  # one spare: an end exactly at `until` lands there with 0
    whole = [0] * (days + 1)  # +1 where a run of whole days starts, -1 where it stops
    for hold in holds:
        start = hold.start if hold.start > since else since
        end = hold.end if hold.end is not None else now
        if end > until:
            end = until
        if end <= start:
            continue
        first = int((start - base) // DAY)
        last = int((end - base) // DAY)
        if first == last:
            seconds[first] += end - start
            continue
        seconds[first] += base + (first + 1) * DAY - start
        seconds[last] += end - (base + last * DAY)
        whole[first + 1] += 1
        whole[last] -= 1
    result = []
    running = 0
    for i in range(days):
        running += whole[i]
        label = time.strftime("%Y-%m-%d", time.gmtime(base + i * DAY))
        result.append((label, (seconds[i] + running * DAY) / 3600))
    return result


def _cell(text: str) -> str:
    """Text as a spreadsheet shows it, never as a formula it runs."""
    return "'" + text if text[:1] in _FORMULA_STARTS else text


def _write(rows: Iterable[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue()


def rows_csv(rows: list[UsageRow], by: str) -> str:
    """A Usage table as CSV: key, GPU-hours, idle GPU-hours, holds."""
    lines: list[list] = [[by, "gpu_hours", "idle_gpu_hours", "holds"]]
    for row in rows:
        key = NO_GROUP if by == "group" and row.key == "" else row.key
        lines.append([_cell(key), round(row.gpu_hours, 4), round(row.idle_hours, 4), row.holds])
    return _write(lines)


def _iso(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


HOLD_COLUMNS = (
    "user",
    "groups",
    "profile",
    "server",
    "gpu",
    "model",
    "start",
    "end",
    "held_seconds",
    "idle_seconds",
    "reason",
)


def holds_csv(holds: Iterable[Hold], now: float) -> str:
    """Every hold as a CSV row; times in ISO 8601 UTC, end and reason empty while open."""
    lines: list[list] = [list(HOLD_COLUMNS)]
    for h in holds:
        text = [h.user, ";".join(h.groups), h.profile, h.server, h.gpu, h.model]
        lines.append(
            [_cell(t) for t in text]
            + [
                _iso(h.start),
                _iso(h.end),
                round(h.held_seconds(now), 1),
                round(h.idle_seconds, 1),
                _cell(h.reason or "") if h.end is not None else "",
            ]
        )
    return _write(lines)


def _svg_open(width: int, height: int, label: str) -> str:
    label = escape(label, {'"': "&quot;"})
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}">'
    )


def chart_svg(days: list[tuple[str, float]], width: int = 720, height: int = 180) -> str:
    """GPU-hours per day as a self-contained SVG bar chart (no scripts, no external assets).

    Each bar has a <title> with its day and hours, for pointers and screen readers.
    """
    if not days:
        return (
            _svg_open(width, height, f"GPU-hours per day: {NO_USE}")
            + f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle">'
            + f"{escape(NO_USE)}</text></svg>"
        )
    first, last = days[0][0], days[-1][0]
    label = f"GPU-hours per day, {first}" + (f" to {last}" if last != first else "")
    left, right, top, bottom = 48.0, 8.0, 12.0, 20.0  # room for the axis labels
    plot_w = max(1.0, width - left - right)
    plot_h = max(1.0, height - top - bottom)
    peak = max(hours for _, hours in days)
    scale = plot_h / peak if peak > 0 else 0.0
    step = plot_w / len(days)
    gap = min(2.0, step * 0.2)
    parts = [
        _svg_open(width, height, label),
        f'<text x="{left - 4:.1f}" y="{top + 4:.1f}" text-anchor="end" font-size="11">'
        f"{peak:.1f}</text>",
        f'<text x="{left - 4:.1f}" y="{top + plot_h:.1f}" text-anchor="end" font-size="11">'
        "0</text>",
        f'<line x1="{left:.1f}" y1="{top + plot_h:.1f}" x2="{left + plot_w:.1f}" '
        f'y2="{top + plot_h:.1f}" stroke="#999"/>',
    ]
    for i, (day, hours) in enumerate(days):
        h = max(0.0, hours) * scale
        parts.append(
            f'<rect class="bar" x="{left + i * step:.2f}" y="{top + plot_h - h:.2f}" '
            f'width="{max(0.5, step - gap):.2f}" height="{h:.2f}">'
            f"<title>{escape(day)}: {hours:.1f} GPU-hours</title></rect>"
        )
    y = height - 4
    parts.append(f'<text x="{left:.1f}" y="{y:.1f}" font-size="11">{escape(first)}</text>')
    if last != first:
        parts.append(
            f'<text x="{left + plot_w:.1f}" y="{y:.1f}" text-anchor="end" font-size="11">'
            f"{escape(last)}</text>"
        )
    if peak <= 0:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
            f'text-anchor="middle">{escape(NO_USE)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
