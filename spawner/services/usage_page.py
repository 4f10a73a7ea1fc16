"""The GPU admin page's Usage view (issue 26): GPU-hours and idle GPU-hours per user, per
group and per profile for a period, a chart of GPU-hours per day, and CSV of each table and
of the raw holds. Admins only, like the rest of the page.

`usage_view` is pure apart from one read of the record (`UsageStore.holds_between`), so
the benchmark times exactly what a request does.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from jupyterhub.utils import url_path_join
from tornado import web

from ..accounting.periods import period_bounds
from ..accounting.report import (
    UsageRow,
    chart_svg,
    daily_gpu_hours,
    holds_csv,
    rows_csv,
    totals,
    usage_by,
)
from ..accounting.usage_store import UsageStore
from .admin_page import AdminHandler, _env

BY = ("user", "group", "profile")
DAY = 86400.0


@dataclass(frozen=True)
class Period:
    name: str  # day, week, month or custom
    since: float
    until: float

    @property
    def label(self) -> str:
        first = time.strftime("%Y-%m-%d", time.gmtime(self.since))
        last = time.strftime("%Y-%m-%d", time.gmtime(self.until - 1))
        return first if first == last else f"{first} to {last}"


def _day(text: str, field: str) -> float:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise web.HTTPError(400, f"'{field}' must be a date like 2026-11-01.") from None


def chosen_period(name: str, since: str, until: str, now: float) -> Period:
    """The period a request asks for; 400 with a sentence for anything else."""
    if name in ("day", "week", "month"):
        return Period(name, *period_bounds(name, now))
    if name != "custom":
        raise web.HTTPError(400, "'period' must be day, week, month or custom.")
    start, last = _day(since, "since"), _day(until, "until")
    if last < start:
        raise web.HTTPError(400, "'until' must not be before 'since'.")
    if last - start > 366 * DAY:
        raise web.HTTPError(400, "A custom period may be at most a year long.")
    return Period("custom", start, last + DAY)  # `until` is the last day, included


@dataclass(frozen=True)
class UsageView:
    period: Period
    tables: dict[str, list[UsageRow]]
    total: UsageRow
    days: list[tuple[str, float]]
    holds: list  # the raw holds of the period (for holds.csv)


def usage_view(store: UsageStore, period: Period, now: float) -> UsageView:
    """Everything the page shows, from one read of the record."""
    holds = store.holds_between(period.since, period.until)
    until = min(period.until, now)
    return UsageView(
        period=period,
        tables={by: usage_by(holds, by, period.since, until, now) for by in BY},
        total=totals(holds, period.since, until, now),
        days=daily_gpu_hours(holds, period.since, period.until, now),
        holds=holds,
    )


def render_usage(view: UsageView, prefix: str, query: str) -> str:
    return _env.get_template("usage.html").render(
        view=view,
        chart=chart_svg(view.days),
        prefix=prefix,
        query=query,
        by_names=BY,
    )


class UsageHandler(AdminHandler):
    """GET usage (the view), usage.csv?by=user|group|profile, holds.csv."""

    def initialize(self, kind: str) -> None:
        self.kind = kind

    @property
    def store(self) -> UsageStore:
        store = self.settings.get("usage_store")
        if store is None:
            raise web.HTTPError(404, "The GPU usage record is off (GpuUsage.enabled).")
        return store

    @web.authenticated
    async def get(self) -> None:
        await self.admin_only()
        now = time.time()
        period = chosen_period(
            self.get_argument("period", "month"),
            self.get_argument("since", ""),
            self.get_argument("until", ""),
            now,
        )
        view = await asyncio.to_thread(usage_view, self.store, period, now)
        self.set_header("Cache-Control", "no-store")
        if self.kind == "page":
            query = f"period={period.name}"
            if period.name == "custom":
                query += f"&since={self.get_argument('since')}&until={self.get_argument('until')}"
            self.finish(render_usage(view, self.settings["prefix"], query))
            return
        if self.kind == "holds":
            body, name = holds_csv(view.holds, now), "gpu-holds"
        else:
            by = self.get_argument("by", "user")
            if by not in BY:
                raise web.HTTPError(400, "'by' must be user, group or profile.")
            body, name = rows_csv(view.tables[by], by), f"gpu-usage-by-{by}"
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header(
            "Content-Disposition",
            f'attachment; filename="{name}-{period.label.replace(" ", "")}.csv"',
        )
        self.finish(body)


def usage_routes(prefix: str) -> list:
    return [
        (url_path_join(prefix, "usage"), UsageHandler, {"kind": "page"}),
        (url_path_join(prefix, "usage.csv"), UsageHandler, {"kind": "table"}),
        (url_path_join(prefix, "holds.csv"), UsageHandler, {"kind": "holds"}),
    ]
