"""The service's look with stand-ins for the hub and the engine: what it sends, and when."""

from __future__ import annotations

import json

from spawner.gpu.allocator import Gpu
from spawner.gpu.labels import container_labels
from spawner.services.fleet_service import FleetService, ReclaimSettings
from spawner.services.gpu_reclaim import ReclaimPolicy


class FakeHub:
    """The hub API and the servers' GPU API, as the service's HubClient offers them."""

    def __init__(self, utilisation: dict[str, float]) -> None:
        self.utilisation = utilisation
        self.takes_warnings = True
        self.sent: list[tuple] = []
        self.kept_at: dict[str, float] = {}

    async def active_users(self):
        return [
            {"name": u, "groups": [], "servers": {"": {"url": f"/user/{u}/", "ready": True,
                                                       "state": {"object_id": f"c-{u}"}}}}
            for u in self.utilisation
        ]  # fmt: skip

    async def gpu_status(self, server):
        url = server.url
        user = url.split("/")[2]
        return {"state": "ok", "gpus": [{"index": 0, "utilization_gpu": self.utilisation[user]}],
                "reclaim": {"warning": None, "kept_at": self.kept_at.get(user)}}  # fmt: skip

    async def warn(self, server, stop_at, idle, message):
        url = server.url
        self.sent.append(("warn", url, stop_at))
        return self.takes_warnings

    async def clear_warning(self, server):
        url = server.url
        self.sent.append(("clear", url))
        return True

    async def forget_servers_except(self, keep):
        self.forgotten_except = set(keep)

    async def stop_server(self, user, name):
        self.sent.append(("stop", user))
        del self.utilisation[user]


def make(tmp_path, hub: FakeHub, clock) -> FleetService:
    async def containers():
        return [
            {"Id": f"c-{u}", "Labels": container_labels(user=u, server=u, gpus=[f"GPU-{i}"],
                                                        profile="train")}
            for i, u in enumerate(hub.utilisation)
        ]  # fmt: skip

    settings = ReclaimSettings(True, {"*": ReclaimPolicy(idle_after=10, warn_for=5)})
    inventory = [Gpu(index=i, id=f"GPU-{i}") for i in range(3)]
    return FleetService(hub, containers, settings, inventory, tmp_path / "fleet.json",
                        clock=clock)  # fmt: skip


async def test_idle_server_warned_then_stopped_busy_one_untouched_snapshot_written(tmp_path):
    now = [1000.0]
    hub = FakeHub({"ann": 0, "bob": 80})
    fleet = make(tmp_path, hub, lambda: now[0])
    for t in (1000, 1005, 1010, 1014):
        now[0] = t
        await fleet.look()
    assert hub.sent == [("warn", "/user/ann/", 1015.0)]
    # The warned server's stop time is in the snapshot: the hub's GPU line estimates by it.
    assert json.loads((tmp_path / "fleet.json").read_text())["reclaim_at"] == {"ann": 1015.0}
    now[0] = 1015
    await fleet.look()
    assert hub.sent[-1] == ("stop", "ann")
    await fleet.look()
    snapshot = json.loads((tmp_path / "fleet.json").read_text())
    assert snapshot["reclaimed_by_profile"] == {"train": 1}
    assert snapshot["held_by_profile"] == {"train": 1} and snapshot["total"] == 3
    assert [r.user for r in fleet.state.rows if not r.free] == ["bob"]


async def test_no_stop_for_a_server_that_never_got_its_warning(tmp_path):
    now = [0.0]
    hub = FakeHub({"ann": 0})
    hub.takes_warnings = False
    fleet = make(tmp_path, hub, lambda: now[0])
    for t in range(0, 60, 5):
        now[0] = t
        await fleet.look()
    assert {s[0] for s in hub.sent} == {"warn"}  # tried again and again, never stopped
    hub.takes_warnings = True
    now[0] = 60
    await fleet.look()
    now[0] = 64
    await fleet.look()
    assert hub.sent[-1] == ("warn", "/user/ann/", 65.0)  # the full warning time from now


async def test_reclaimed_count_survives_a_restart_of_the_service(tmp_path):
    (tmp_path / "fleet.json").write_text(json.dumps({"reclaimed_by_profile": {"train": 4}}))
    fleet = make(tmp_path, FakeHub({}), lambda: 0.0)
    await fleet.look()
    assert json.loads((tmp_path / "fleet.json").read_text())["reclaimed_by_profile"] == {"train": 4}
