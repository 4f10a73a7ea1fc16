"""The Usage view's figures over a year of GPU holds: how long each step takes.

Generates (seeded, so every run sees the same data) 500 users in 20 groups sharing 64 GPUs
for a year: each GPU is held back to back by random users for a few hours at a time, about
160,000 holds. Then times, median of 5 runs, in milliseconds: `usage_by` by user, group
and profile, `totals`, `daily_gpu_hours` for one month and for the whole year (every hold
of the year passed in, as a worst case), `chart_svg` of the year's days, and the CSV of a
month. Pure computation: no database, no Docker.

    .venv/bin/python benchmarks/usage_report.py [--seed 26] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from calendar import timegm
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spawner.accounting.holds import REASONS, Hold  # noqa: E402
from spawner.accounting.report import (  # noqa: E402
    chart_svg,
    daily_gpu_hours,
    holds_csv,
    totals,
    usage_by,
)

USERS, GROUPS, GPUS = 500, 20, 64
PROFILES = ("gpu", "two-gpus", "pytorch", "tensorflow", "rapids")


def utc(year: int, month: int, day: int) -> float:
    return float(timegm((year, month, day, 0, 0, 0)))


YEAR_START, YEAR_END = utc(2026, 1, 1), utc(2027, 1, 1)
MONTH = (utc(2026, 11, 1), utc(2026, 12, 1))


def make_holds(seed: int) -> list[Hold]:
    rng = random.Random(seed)
    users = [f"user{i:03d}" for i in range(USERS)]
    # Most users in one group, some in two, a few in none.
    groups = {
        u: tuple(rng.sample([f"group{g:02d}" for g in range(GROUPS)], rng.choice((0, 1, 1, 1, 2))))
        for u in users
    }
    now = YEAR_END - 3600  # the last hour of the year: the newest holds are still open
    holds = []
    for gpu in range(GPUS):
        t = YEAR_START + rng.uniform(0, 3600)
        while t < now:
            held = rng.lognormvariate(9.0, 0.9)  # median about 2.2 hours
            user = rng.choice(users)
            end = t + held
            closed = end < now
            holds.append(
                Hold(
                    user=user,
                    groups=groups[user],
                    profile=rng.choice(PROFILES),
                    server=user,
                    gpu=str(gpu),
                    model="H200",
                    start=t,
                    end=end if closed else None,
                    idle_seconds=held * rng.random() * 0.5,
                    reason=rng.choice(REASONS) if closed else None,
                )
            )
            t = end + rng.expovariate(1 / 1800)  # half an hour free on average
    return holds


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    holds = make_holds(args.seed)
    now = YEAR_END - 3600
    since, until = MONTH
    month_holds = [h for h in holds if h.start < until and (h.end is None or h.end > since)]
    year_days = daily_gpu_hours(holds, YEAR_START, YEAR_END, now)
    print(
        f"{len(holds)} holds of {USERS} users on {GPUS} GPUs in a year "
        f"({len(month_holds)} in November); median of {args.repeat}, ms"
    )
    steps: list[tuple[str, Callable[[], object]]] = [
        *(
            (f"usage_by {by}, year", lambda by=by: usage_by(holds, by, YEAR_START, now, now))
            for by in ("user", "group", "profile")
        ),
        *(
            (
                f"usage_by {by}, month",
                lambda by=by: usage_by(month_holds, by, since, until, now),
            )
            for by in ("user", "group", "profile")
        ),
        ("totals, year", lambda: totals(holds, YEAR_START, now, now)),
        ("daily_gpu_hours, month of the year's holds", lambda: daily_gpu_hours(holds, *MONTH, now)),
        ("daily_gpu_hours, month", lambda: daily_gpu_hours(month_holds, since, until, now)),
        ("daily_gpu_hours, year", lambda: daily_gpu_hours(holds, YEAR_START, YEAR_END, now)),
        ("chart_svg, year (365 bars)", lambda: chart_svg(year_days)),
        ("holds_csv, month", lambda: holds_csv(month_holds, now)),
    ]
    for name, fn in steps:
        print(f"  {name:<44} {median_ms(fn, args.repeat):8.1f}")


if __name__ == "__main__":
    main()
