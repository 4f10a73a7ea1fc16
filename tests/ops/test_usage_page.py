"""The Usage view's request and the hub's counters from a real record (SQLite in a temporary
folder). The report itself runs on both databases in tests/accounting."""

from __future__ import annotations

import json

import pytest
from tornado import web

from spawner.accounting.holds import STOPPED, Hold
from spawner.accounting.usage_store import UsageStore
from spawner.services.usage_page import chosen_period

DAY = 86400.0
NOV_1 = 1_793_491_200.0  # 2026-11-01T00:00:00Z
NOW = NOV_1 + 10 * DAY + 12 * 3600  # 2026-11-11 12:00 UTC


def test_periods_from_the_request_and_a_sentence_for_anything_else():
    month = chosen_period("month", "", "", NOW)
    assert (month.since, month.label) == (NOV_1, "2026-11-01 to 2026-11-30")
    custom = chosen_period("custom", "2026-11-02", "2026-11-03", NOW)
    assert (custom.since, custom.until) == (NOV_1 + DAY, NOV_1 + 3 * DAY)  # the last day counts
    for args, says in [
        (("year", "", ""), "'period' must be day, week, month or custom."),
        (("custom", "2026-11-05", "2026-11-01"), "'until' must not be before 'since'."),
        (("custom", "yesterday", "2026-11-01"), "'since' must be a date like 2026-11-01."),
        (("custom", "2025-01-01", "2026-11-01"), "A custom period may be at most a year long."),
    ]:
        with pytest.raises(web.HTTPError) as refused:
            chosen_period(*args, NOW)
        assert refused.value.status_code == 400 and refused.value.log_message == says


def test_hub_metrics_count_gpu_seconds_per_group_and_profile_never_per_user(tmp_path):
    from prometheus_client.core import Metric

    from spawner.accounting.budgets import parse_budgets
    from spawner.services.hub_metrics import _usage_families
    from spawner.services.usage_keeper import usage_figures

    store = UsageStore(f"sqlite:///{tmp_path / 'gpu-usage.sqlite'}")
    for user, groups, gpu in (("ann", ("vision",), "0"), ("bob", ("vision", "nlp"), "1")):
        store.open_hold(Hold(user, groups, "train", user, gpu, "H100", NOW - 3600))
    store.add_idle("ann", 600)
    store.open_hold(Hold("cat", (), "infer", "cat", "2", "H100", NOW - 7200))
    store.close_server("cat", NOW - 3600, STOPPED)
    budgets = parse_budgets([{"group": "vision", "gpu_hours": 4, "period": "day"}])
    figures = usage_figures(store, budgets, NOW)
    families: list[Metric] = list(_usage_families(json.loads(json.dumps(figures))))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    assert (
        samples[("cudaspawner_gpu_seconds_total", (("group", "vision"), ("profile", "train")))]
        == 7200
    )
    assert (
        samples[("cudaspawner_gpu_seconds_total", (("group", "nlp"), ("profile", "train")))] == 3600
    )
    assert samples[("cudaspawner_gpu_seconds_total", (("group", ""), ("profile", "infer")))] == 3600
    idle = ("cudaspawner_gpu_idle_seconds_total", (("group", "vision"), ("profile", "train")))
    assert samples[idle] == 600
    # vision used 2 of its 4 GPU-hours today (ann's and bob's hour each).
    assert samples[("cudaspawner_gpu_budget_used_ratio", (("group", "vision"),))] == 0.5
    assert not any("user" in dict(labels) for _, labels in samples)
    store.close()
