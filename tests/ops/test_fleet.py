"""The GPU table and the fleet's figures from the hub's servers and their labels (pure)."""

from __future__ import annotations

from spawner.gpu.allocator import Gpu
from spawner.gpu.labels import container_labels
from spawner.services.fleet import fleet_rows, gpu_servers, summarise
from spawner.services.gpu_reclaim import Watch

INVENTORY = [Gpu(index=i, id=f"GPU-{i}", name="H100") for i in range(4)]


def container(cid: str, user: str, server: str, gpus: list[str], profile: str) -> dict:
    labels = container_labels(
        user=user, server=server, gpus=gpus, since="2026-01-01T10:00:00Z", profile=profile
    )
    return {"Id": cid, "Labels": labels}


def user(name: str, servers: dict[str, str], groups=()) -> dict:
    return {
        "name": name,
        "groups": list(groups),
        "servers": {
            s: {"url": f"/user/{name}/{s}", "ready": True, "state": {"object_id": cid}}
            for s, cid in servers.items()
        },
    }


USERS = [
    user("ann", {"": "c-ann"}, ["ml"]),
    user("bob", {"": "c-bob", "big": "c-bob-big"}, ["ml", "staff"]),
    user("cpu", {"": "c-cpu"}),
]
CONTAINERS = [
    container("c-ann", "ann", "ann", ["GPU-2"], "train"),
    container("c-bob", "bob", "bob", ["GPU-0"], "train"),
    container("c-bob-big", "bob", "bob/big", ["GPU-1", "GPU-3"], "big"),
    {"Id": "c-cpu", "Labels": {}},  # CPU-only: no GPU labels
    container("c-other-hub", "eve", "eve", ["GPU-9"], "train"),  # not this hub's
]


def test_only_this_hubs_gpu_servers_are_in_the_fleet():
    servers, problems = gpu_servers(USERS, CONTAINERS)
    assert {s.key: s.gpu_ids for s in servers} == {
        "ann": ("GPU-2",),
        "bob": ("GPU-0",),
        "bob/big": ("GPU-1", "GPU-3"),
    }
    assert problems == []
    big = next(s for s in servers if s.key == "bob/big")
    assert (big.user, big.name, big.profile, big.groups) == ("bob", "big", "big", ("ml", "staff"))


def test_rows_join_holders_live_figures_and_idle_time_and_list_free_gpus():
    servers, _ = gpu_servers(USERS, CONTAINERS)
    live = {
        "ann": [{"uuid": "GPU-2", "index": 0, "utilization_gpu": 0, "memory_used": 2**30,
                 "memory_total": 80 * 2**30}],
        # The container numbers its GPUs from 0; matched in order when ids are not UUIDs seen.
        "bob/big": [{"index": 1, "utilization_gpu": 70}, {"index": 0, "utilization_gpu": 20}],
    }  # fmt: skip
    watches = {"ann": Watch(idle_since=1000.0, stop_at=1900.0)}
    rows = fleet_rows(servers, INVENTORY + [Gpu(index=4, id="GPU-4", name="H100")], live,
                      watches, now=1600.0)  # fmt: skip
    by_gpu = {r.gpu: r for r in rows}
    assert [r.gpu for r in rows] == ["GPU-0", "GPU-1", "GPU-2", "GPU-3", "GPU-4"]
    ann = by_gpu["GPU-2"]
    assert (ann.user, ann.server, ann.profile, ann.since) == ("ann", "ann", "train",
                                                              "2026-01-01T10:00:00Z")  # fmt: skip
    assert (ann.utilisation, ann.memory_used, ann.idle_seconds, ann.stop_at) == (
        0, 2**30, 600.0, 1900.0)  # fmt: skip
    assert (by_gpu["GPU-1"].utilisation, by_gpu["GPU-3"].utilisation) == (20, 70)
    assert by_gpu["GPU-0"].utilisation is None and by_gpu["GPU-0"].idle_seconds is None
    assert by_gpu["GPU-4"].free and by_gpu["GPU-4"].model == "H100"


def test_summary_counts_held_and_idle_per_profile_and_group():
    servers, _ = gpu_servers(USERS, CONTAINERS)
    watches = {"bob/big": Watch(idle_since=0.0), "ann": Watch(idle_since=0.0)}
    rows = fleet_rows(servers, INVENTORY, {}, watches, now=10.0)
    summary = summarise(rows, servers, INVENTORY)
    assert summary.total == 4
    assert summary.held_by_profile == {"train": 2, "big": 2}
    assert summary.held_by_group == {"ml": 4, "staff": 3}
    assert summary.idle_by_profile == {"big": 2, "train": 1}
    assert summary.idle_by_group == {"ml": 3, "staff": 2}


def test_a_container_with_broken_labels_is_reported_not_raised():
    broken = {"Id": "c-ann", "Labels": {"org.cudaspawner.gpus": "GPU-2,GPU-2"}}
    servers, problems = gpu_servers(USERS[:1], [broken])
    assert servers == [] and "lists a GPU twice" in problems[0]


def test_a_server_still_starting_is_not_asked_yet():
    starting = user("ann", {"": "c-ann"})
    starting["servers"][""]["ready"] = False
    assert gpu_servers([starting], CONTAINERS) == ([], [])
