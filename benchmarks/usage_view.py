"""The Usage view as a request makes it, for 500 users, 64 GPUs and a year of holds.

The year of holds `usage_report.make_holds` generates (seeded: the same data every run) is
written into a real record (SQLite in a temporary folder, or PostgreSQL with --url), then
the view is timed as the admin page's handler makes it: one read of the record for the
period (`UsageStore.holds_between`), the three tables, the totals, the daily chart, and the
page's HTML. Median of --repeat runs, in milliseconds, for this month, a week and a day.

    .venv/bin/python benchmarks/usage_view.py [--repeat 5] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from benchmarks.usage_report import MONTH, make_holds  # noqa: E402
from spawner.accounting.usage_store import UsageStore, holds_table  # noqa: E402
from spawner.services.usage_page import Period, render_usage, usage_view  # noqa: E402

DAY = 86400.0


def fill(store: UsageStore, seed: int) -> int:
    holds = make_holds(seed)
    rows = [
        {
            "user": h.user, "groups": json.dumps(list(h.groups)), "profile": h.profile,
            "server": h.server, "gpu": h.gpu, "model": h.model, "start": h.start,
            "end": h.end, "seen": h.seen, "idle_seconds": h.idle_seconds, "reason": h.reason,
        }
        for h in holds
    ]  # fmt: skip
    with store.engine.begin() as db:
        db.execute(holds_table.delete())
        for i in range(0, len(rows), 5000):
            db.execute(sa.insert(holds_table), rows[i : i + 5000])
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=26)
    ap.add_argument("--url", default="", help="a PostgreSQL URL (default: SQLite, temporary)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = UsageStore(args.url or f"sqlite:///{Path(tmp) / 'gpu-usage.sqlite'}")
        count = fill(store, args.seed)
        now = MONTH[1] - 3600 * 30  # late in the month
        periods = {
            "month": Period("month", *MONTH),
            "week": Period("week", now - 7 * DAY, now),
            "day": Period("day", now - DAY, now),
        }
        print(f"{count} holds of a year; {store.engine.dialect.name}")
        for name, period in periods.items():
            times, shown = [], 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                view = usage_view(store, period, now)
                render_usage(view, "/services/gpu-admin/", f"period={name}")
                times.append((time.perf_counter() - t0) * 1000)
                shown = len(view.holds)
            print(f"  {name:5s}: {statistics.median(times):7.1f} ms ({shown} holds read)")
        store.close()


if __name__ == "__main__":
    main()
