"""The operations service's looks and the GPU-hours record (a real SQLite record; stand-ins
for the hub and the engine): holds opened from labels and kept alive, idle time by the
threshold, figures sent to each owner's panel when they change, and the admin's opt-in that
stops a server over a hard budget (off: nobody is stopped)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from spawner.accounting.budgets import parse_budgets
from spawner.accounting.usage_store import UsageStore
from spawner.gpu.allocator import Gpu
from spawner.gpu.labels import container_labels
from spawner.services.fleet_service import FleetService, ReclaimSettings
from spawner.services.gpu_reclaim import ReclaimPolicy
from spawner.services.usage_keeper import UsageKeeper
from tests.ops.test_fleet_service import FakeHub

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a Friday


class UsageHub(FakeHub):
    def __init__(self, utilisation):
        super().__init__(utilisation)
        self.usage: list[tuple[str, dict]] = []

    async def send_usage(self, server, figures):
        self.usage.append((server.user, figures))
        return True


def service(tmp_path, hub, now, stop_over_budget: bool):
    since = datetime.fromtimestamp(T0, timezone.utc)

    async def containers():
        return [
            {"Id": f"c-{u}", "Labels": container_labels(user=u, server=u, gpus=[f"GPU-{i}"],
                                                        profile="train", since=since)}
            for i, u in enumerate(hub.utilisation)
        ]  # fmt: skip

    store = UsageStore(f"sqlite:///{tmp_path / 'gpu-usage.sqlite'}")
    budgets = parse_budgets([{"user": "ann", "gpu_hours": 0.01, "period": "day"}])
    keeper = UsageKeeper(store, 1.0, {"GPU-0": "H100"}, logging.getLogger("t"), budgets,
                         stop_over_budget)  # fmt: skip
    settings = ReclaimSettings(False, {"*": ReclaimPolicy(idle_after=600, warn_for=60)}, interval=1)
    inventory = [Gpu(index=i, id=f"GPU-{i}") for i in range(2)]
    fleet = FleetService(hub, containers, settings, inventory, tmp_path / "fleet.json",
                         clock=lambda: now[0], usage=keeper)  # fmt: skip
    return fleet, store


@pytest.mark.parametrize("opted_in", [False, True])
async def test_looks_record_holds_idle_time_panels_and_the_budget_opt_in(tmp_path, opted_in):
    now = [T0 + 10]
    hub = UsageHub({"ann": 0, "bob": 90})
    fleet, store = service(tmp_path, hub, now, opted_in)
    for t in (T0 + 10, T0 + 11, T0 + 12):
        now[0] = t
        await fleet.look()
    holds = {h.user: h for h in store.open_holds()}
    assert {u: (h.start, h.seen, h.model) for u, h in holds.items()} == {
        "ann": (T0, T0 + 12, "H100"), "bob": (T0, T0 + 12, "")
    }  # fmt: skip
    # ann's GPU at 0 % is idle between looks; bob's at 90 % never.
    assert (holds["ann"].idle_seconds, holds["bob"].idle_seconds) == (2.0, 0.0)
    # Each owner's panel got its figures once: they did not change in hundredths of an hour.
    assert [u for u, _ in hub.usage] == ["ann", "bob"]
    assert dict(hub.usage)["ann"]["warnings"] == []
    # 40 s in, ann is over her hard budget (36 GPU-seconds a day): her panel is told.
    now[0] = T0 + 40
    await fleet.look()
    ann = [f for u, f in hub.usage if u == "ann"][-1]
    assert ann["warnings"][0].startswith("You have used 0.0 of your 0.01 GPU-hours today;")
    if opted_in:
        assert ("stop", "ann") in hub.sent and ("stop", "bob") not in hub.sent
        # Its hold is marked: the hub's stop closes it, keeping that reason.
        (marked,) = [h for h in store.holds_between(0, T0 + 100) if h.user == "ann"]
        assert marked.reason == "over budget"
        store.close_server("ann", T0 + 41, "stopped")
        closed = [h for h in store.holds_between(0, T0 + 100) if h.user == "ann"]
        assert [(h.end, h.reason) for h in closed] == [(T0 + 41, "over budget")]
    else:
        assert not [s for s in hub.sent if s[0] == "stop"]  # a budget stops nobody by default
    store.close()
