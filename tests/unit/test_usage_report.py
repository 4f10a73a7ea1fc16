"""The Usage view's figures: GPU-hours by user, group and profile, per day, CSV and chart."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from calendar import timegm

import pytest

from spawner.accounting.holds import RECLAIMED, Hold
from spawner.accounting.report import (
    UsageRow,
    chart_svg,
    daily_gpu_hours,
    holds_csv,
    rows_csv,
    totals,
    usage_by,
)

HOUR = 3600.0
SVG = "{http://www.w3.org/2000/svg}"


def utc(*when: int) -> float:
    """Epoch seconds of a UTC date and time: utc(2026, 11, 1, 8) is 1 November 08:00."""
    return float(timegm((*when, *(0,) * (6 - len(when)), 0, 0, 0)))


# November 2026 as the period; "now" is late on the 30th.
SINCE, UNTIL, NOW = utc(2026, 11, 1), utc(2026, 12, 1), utc(2026, 11, 30, 20)


def hold(user="ann", start=utc(2026, 11, 2, 8), hours=2.0, **kw) -> Hold:
    end = kw.pop("end", start + hours * HOUR)
    kw.setdefault("groups", ("vision",))
    kw.setdefault("profile", "gpu")
    kw.setdefault("server", user)
    return Hold(user=user, gpu="0", model="H200", start=start, end=end, **kw)


def by_key(rows: list[UsageRow]) -> dict[str, UsageRow]:
    return {r.key: r for r in rows}


def test_use_is_summed_per_user_with_the_most_used_first():
    holds = [hold("ann", hours=1), hold("bob", hours=3), hold("ann", hours=1)]
    rows = usage_by(holds, "user", SINCE, UNTIL, NOW)
    assert [(r.key, r.gpu_hours, r.holds) for r in rows] == [("bob", 3.0, 1), ("ann", 2.0, 2)]


def test_equal_use_is_listed_by_name():
    rows = usage_by([hold("cat"), hold("ann"), hold("bob")], "user", SINCE, UNTIL, NOW)
    assert [r.key for r in rows] == ["ann", "bob", "cat"]


def test_a_hold_is_clipped_to_the_period():
    # From 31 October 22:00 to 1 November 03:00: only the 3 hours of November count.
    rows = usage_by([hold(start=utc(2026, 10, 31, 22), hours=5)], "user", SINCE, UNTIL, NOW)
    assert rows[0].gpu_hours == pytest.approx(3.0)
    assert rows[0].holds == 1


def test_holds_outside_the_period_are_left_out():
    holds = [hold("old", start=utc(2026, 10, 3), hours=4), hold("ann")]
    assert [r.key for r in usage_by(holds, "user", SINCE, UNTIL, NOW)] == ["ann"]
    assert totals(holds, SINCE, UNTIL, NOW).holds == 1


def test_a_hold_ending_as_the_period_starts_is_left_out():
    holds = [hold("old", start=utc(2026, 10, 31, 22), end=SINCE)]
    assert usage_by(holds, "user", SINCE, UNTIL, NOW) == []


def test_an_open_hold_counts_up_to_now():
    open_hold = hold(start=NOW - 5 * HOUR, end=None)
    rows = usage_by([open_hold], "user", SINCE, UNTIL, NOW)
    assert rows[0].gpu_hours == pytest.approx(5.0)
    assert totals([open_hold], SINCE, UNTIL, NOW).gpu_hours == pytest.approx(5.0)


def test_a_user_in_two_groups_counts_in_both():
    holds = [hold("ann", groups=("vision", "nlp"), hours=2), hold("bob", groups=("nlp",), hours=1)]
    rows = by_key(usage_by(holds, "group", SINCE, UNTIL, NOW))
    assert rows["vision"].gpu_hours == 2.0
    assert rows["nlp"].gpu_hours == 3.0
    assert rows["nlp"].holds == 2
    # The total counts each hold once.
    assert totals(holds, SINCE, UNTIL, NOW).gpu_hours == 3.0


def test_a_group_listed_twice_in_a_hold_counts_once():
    rows = usage_by([hold(groups=("vision", "vision"))], "group", SINCE, UNTIL, NOW)
    assert [(r.key, r.gpu_hours) for r in rows] == [("vision", 2.0)]


def test_a_user_in_no_group_counts_under_the_empty_key():
    rows = usage_by([hold(groups=())], "group", SINCE, UNTIL, NOW)
    assert [(r.key, r.gpu_hours) for r in rows] == [("", 2.0)]


def test_use_is_summed_per_profile():
    holds = [hold(profile="gpu"), hold(profile="two-gpus", hours=4), hold(profile="gpu")]
    rows = usage_by(holds, "profile", SINCE, UNTIL, NOW)
    assert [(r.key, r.gpu_hours) for r in rows] == [("gpu", 4.0), ("two-gpus", 4.0)]


def test_usage_by_something_else_is_refused_with_a_sentence():
    with pytest.raises(ValueError, match="by user, group or profile"):
        usage_by([hold()], "gpu", SINCE, UNTIL, NOW)


def test_idle_time_counts_in_proportion_to_the_part_inside_the_period():
    # 4 hours, half of them idle, of which 1 hour inside November: 0.5 idle hours count.
    h = hold(start=utc(2026, 10, 31, 21), hours=4, idle_seconds=2 * HOUR)
    row = usage_by([h], "user", SINCE, UNTIL, NOW)[0]
    assert row.gpu_hours == pytest.approx(1.0)
    assert row.idle_hours == pytest.approx(0.5)


def test_idle_time_never_exceeds_the_time_held():
    row = totals([hold(hours=1, idle_seconds=5 * HOUR)], SINCE, UNTIL, NOW)
    assert row.idle_hours == pytest.approx(1.0)


def test_totals_are_one_row_named_all():
    holds = [hold("ann", hours=1, idle_seconds=HOUR / 2), hold("bob", hours=2)]
    assert totals(holds, SINCE, UNTIL, NOW) == UsageRow("all", 3 * HOUR, HOUR / 2, 2)


def test_totals_of_nothing_are_zero():
    assert totals([], SINCE, UNTIL, NOW) == UsageRow("all", 0.0, 0.0, 0)


# Per day.


def test_every_day_of_the_period_is_listed_with_days_without_use():
    days = daily_gpu_hours([hold(start=utc(2026, 11, 2, 8), hours=2)], SINCE, UNTIL, NOW)
    assert len(days) == 30
    assert days[0] == ("2026-11-01", 0.0)
    assert days[1] == ("2026-11-02", 2.0)
    assert days[-1] == ("2026-11-30", 0.0)
    assert [d for d, _ in days] == sorted(d for d, _ in days)


def test_a_hold_across_midnight_counts_in_both_days():
    days = dict(daily_gpu_hours([hold(start=utc(2026, 11, 2, 22), hours=3)], SINCE, UNTIL, NOW))
    assert days["2026-11-02"] == pytest.approx(2.0)
    assert days["2026-11-03"] == pytest.approx(1.0)
    assert days["2026-11-04"] == 0.0


def test_a_hold_spanning_three_days_fills_the_whole_day_between():
    # 5 November 18:00 to 7 November 06:00: 6 + 24 + 6 hours.
    h = hold(start=utc(2026, 11, 5, 18), end=utc(2026, 11, 7, 6))
    days = dict(daily_gpu_hours([h], SINCE, UNTIL, NOW))
    assert days["2026-11-05"] == pytest.approx(6.0)
    assert days["2026-11-06"] == pytest.approx(24.0)
    assert days["2026-11-07"] == pytest.approx(6.0)
    assert sum(days.values()) == pytest.approx(36.0)


def test_days_are_clipped_to_the_period_and_open_holds_to_now():
    holds = [
        hold(start=utc(2026, 10, 30), end=utc(2026, 11, 1, 2)),  # 2 hours in November
        hold(start=utc(2026, 11, 30, 18), end=None),  # open: 2 hours up to now
    ]
    days = daily_gpu_hours(holds, SINCE, UNTIL, NOW)
    assert days[0] == ("2026-11-01", pytest.approx(2.0))
    assert days[-1] == ("2026-11-30", pytest.approx(2.0))
    assert sum(h for _, h in days) == pytest.approx(4.0)


def test_a_hold_ending_at_the_end_of_the_period_stays_inside_it():
    h = hold(start=utc(2026, 11, 28, 12), end=UNTIL)
    days = daily_gpu_hours([h], SINCE, UNTIL, UNTIL + HOUR)
    assert len(days) == 30
    assert days[-3:] == [("2026-11-28", 12.0), ("2026-11-29", 24.0), ("2026-11-30", 24.0)]


def test_daily_hours_add_up_to_the_total():
    holds = [
        hold("ann", start=utc(2026, 11, 3, 7, 13), end=utc(2026, 11, 9, 1, 2)),
        hold("bob", start=utc(2026, 10, 20), end=utc(2026, 11, 2, 5)),
        hold("cat", start=utc(2026, 11, 29, 23, 30), end=None),
        hold("dan", start=utc(2026, 11, 12, 1), hours=0.25),
    ]
    days = daily_gpu_hours(holds, SINCE, UNTIL, NOW)
    total = totals(holds, SINCE, UNTIL, NOW)
    assert sum(h for _, h in days) == pytest.approx(total.gpu_hours)


def test_an_empty_period_has_no_days():
    assert daily_gpu_hours([hold()], UNTIL, SINCE, NOW) == []


# CSV.


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_table_csv_parses_and_its_rows_sum_to_the_totals():
    holds = [
        hold("ann", hours=1.23456, idle_seconds=600),
        hold("bob", start=utc(2026, 11, 7, 3, 17), hours=7.77777, idle_seconds=3 * HOUR),
        hold("cat", start=utc(2026, 10, 31, 23), end=None),
    ]
    rows = parse(rows_csv(usage_by(holds, "user", SINCE, UNTIL, NOW), "user"))
    assert rows[0] == ["user", "gpu_hours", "idle_gpu_hours", "holds"]
    total = totals(holds, SINCE, UNTIL, NOW)
    assert sum(float(r[1]) for r in rows[1:]) == pytest.approx(total.gpu_hours, abs=1e-3)
    assert sum(float(r[2]) for r in rows[1:]) == pytest.approx(total.idle_hours, abs=1e-3)
    assert sum(int(r[3]) for r in rows[1:]) == total.holds


def test_table_csv_rounds_hours_to_four_decimals():
    rows = parse(rows_csv([UsageRow("ann", 1000.0, 10.0, 1)], "user"))
    assert rows[1] == ["ann", "0.2778", "0.0028", "1"]


def test_table_csv_shows_no_group_for_a_user_in_no_group():
    rows = parse(rows_csv(usage_by([hold(groups=())], "group", SINCE, UNTIL, NOW), "group"))
    assert rows[0][0] == "group"
    assert rows[1][0] == "(no group)"


def test_holds_csv_has_one_row_per_hold_with_utc_times():
    closed = hold(
        "ann",
        groups=("vision", "nlp"),
        server="ann/big",
        start=utc(2026, 11, 2, 8),
        hours=1.5,
        idle_seconds=600.04,
        reason=RECLAIMED,
    )
    running = hold("bob", groups=(), start=NOW - 90, end=None, reason=RECLAIMED)
    rows = parse(holds_csv([closed, running], NOW))
    assert rows[0] == [
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
    ]
    assert rows[1] == [
        "ann",
        "vision;nlp",
        "gpu",
        "ann/big",
        "0",
        "H200",
        "2026-11-02T08:00:00Z",
        "2026-11-02T09:30:00Z",
        "5400.0",
        "600.0",
        "reclaimed",
    ]
    # Open: no end and no reason yet, held up to now.
    assert rows[2][6:] == ["2026-11-30T19:58:30Z", "", "90.0", "0.0", ""]
    assert len(rows) == 3


@pytest.mark.parametrize("hostile", ["=HYPERLINK(1)", "+1+1", "-2+3", "@SUM(A1)"])
def test_a_formula_in_a_name_never_reaches_a_spreadsheet(hostile):
    h = hold(hostile, groups=(hostile,), profile=hostile)
    table = parse(rows_csv(usage_by([h], "user", SINCE, UNTIL, NOW), "user"))
    assert table[1][0] == "'" + hostile
    raw = parse(holds_csv([h], NOW))[1]
    assert raw[0] == raw[1] == raw[2] == "'" + hostile
    assert raw[3] == "'" + hostile  # the server key is the user name


def test_plain_names_are_written_as_they_are():
    table = parse(rows_csv([UsageRow("ann-lee", 3600.0, 0.0, 1)], "user"))
    assert table[1][0] == "ann-lee"


def test_names_with_commas_and_quotes_survive_the_csv():
    name = 'x,"y"\nz'
    assert parse(holds_csv([hold(name)], NOW))[1][0] == name


# Chart.


def test_the_chart_is_well_formed_svg_with_a_bar_and_title_per_day():
    days = daily_gpu_hours([hold(start=utc(2026, 11, 2, 8), hours=12.34)], SINCE, UNTIL, NOW)
    root = ET.fromstring(chart_svg(days))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label") == "GPU-hours per day, 2026-11-01 to 2026-11-30"
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 30
    titles = [bar.find(f"{SVG}title").text for bar in bars]
    assert titles[0] == "2026-11-01: 0.0 GPU-hours"
    assert titles[1] == "2026-11-02: 12.3 GPU-hours"
    # The tallest bar is the one with use; the others are flat.
    heights = [float(bar.get("height")) for bar in bars]
    assert heights[1] == max(heights) > 0
    assert heights.count(0.0) == 29
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "12.3" in texts  # the y axis' top


def test_the_chart_has_no_scripts_and_no_outside_references():
    svg = chart_svg([("2026-11-01", 1.0), ("2026-11-02", 2.0)])
    assert "<script" not in svg
    assert "href" not in svg
    assert "url(" not in svg


def test_the_chart_escapes_its_text():
    root = ET.fromstring(chart_svg([('<b>&"x"', 1.0), ("2026-11-02", 2.0)]))
    assert root.get("aria-label") == 'GPU-hours per day, <b>&"x" to 2026-11-02'
    assert root.find(f"{SVG}rect/{SVG}title").text == '<b>&"x": 1.0 GPU-hours'


def test_a_chart_of_no_days_says_there_was_no_use():
    root = ET.fromstring(chart_svg([]))
    assert root.get("role") == "img"
    assert root.findall(f"{SVG}rect") == []
    assert [t.text for t in root.iter(f"{SVG}text")] == ["No GPU use in this period."]


def test_a_chart_of_days_without_use_says_so_too():
    root = ET.fromstring(chart_svg([("2026-11-01", 0.0), ("2026-11-02", 0.0)]))
    assert len(root.findall(f"{SVG}rect")) == 2
    assert "No GPU use in this period." in [t.text for t in root.iter(f"{SVG}text")]
