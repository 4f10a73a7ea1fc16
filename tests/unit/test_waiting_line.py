"""The line for busy GPUs, as pure rules: places, order, fairness, who starts, estimates."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

import pytest

from spawner.docker_edge.gpu_line import WaitsInLine
from spawner.gpu.allocator import Gpu, GpuAllocator
from spawner.gpu.cluster import Capacity
from spawner.gpu.host import GpuHost
from spawner.gpu.waiting_line import HeldGpu, LineError, Waiter, WaitingLine, estimate
from spawner.planning.choice import Choice
from spawner.services.hub_metrics import fleet_figures, register_fleet_metrics
from spawner.swarm_edge.spawner import ClusterPool

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def waiter(user: str, at: float, gpus: int = 1, pool: str = "h100", groups=()) -> Waiter:
    return Waiter(user, user, pool, gpus, T0 + at, tuple(groups), {"profile": pool, "gpus": gpus})


def test_users_wait_in_the_order_they_joined_each_pool_apart():
    line = WaitingLine()
    for w in (waiter("carol", 1), waiter("dave", 2), waiter("erin", 3, pool="a100")):
        line.join(w)
    assert line.position("carol") == 1 and line.position("dave") == 2
    assert line.position("erin") == 1  # another kind of GPU: another line
    assert line.position("zoe") is None


def test_joining_again_keeps_one_place_and_the_first_time_of_joining():
    line = WaitingLine([waiter("carol", 1), waiter("dave", 2)])
    renewed = line.join(waiter("carol", 50, gpus=2))  # a new choice, asked again later
    assert renewed.joined == T0 + 1 and renewed.gpus == 2
    assert [w.user for w in line.waiters] == ["carol", "dave"]


def test_leaving_frees_the_place_and_the_next_users_move_up():
    line = WaitingLine([waiter("carol", 1), waiter("dave", 2)])
    assert line.leave("carol").user == "carol" and line.leave("carol") is None
    assert line.position("dave") == 1


def test_only_a_request_for_gpus_can_wait():
    with pytest.raises(LineError, match="Only a request for GPUs"):
        WaitingLine().join(waiter("carol", 1, gpus=0))


def test_the_head_starts_when_it_fits_and_no_one_behind_jumps_it():
    line = WaitingLine([waiter("carol", 1, gpus=2), waiter("dave", 2, gpus=1)])
    # One GPU free: carol needs two, and dave (one) must not take it before her.
    assert line.next_to_start("h100", free=1) is None
    assert line.next_to_start("h100", free=2).user == "carol"
    line.leave("carol")
    assert line.next_to_start("h100", free=1).user == "dave"
    assert line.next_to_start("a100", free=4) is None


def test_a_group_over_its_share_goes_behind_groups_under_theirs():
    line = WaitingLine([waiter("carol", 1, groups=["vision"]), waiter("dave", 2, groups=["nlp"])])
    shares = {"vision": 2, "nlp": 2}
    held = {"vision": 3, "nlp": 1}  # vision holds more than its share
    assert [w.user for w in line.order("h100", held, shares)] == ["dave", "carol"]
    assert line.position("carol", held, shares) == 2
    assert line.next_to_start("h100", 1, held, shares).user == "dave"
    # Without shares, the order is the order of joining.
    assert line.next_to_start("h100", 1).user == "carol"


def test_places_older_than_the_maximum_wait_expire():
    line = WaitingLine([waiter("carol", 0), waiter("dave", 3000)])
    assert [w.user for w in line.expired(T0 + 3700, max_wait=3600)] == ["carol"]


def test_the_estimate_names_the_reclaim_that_frees_a_gpu():
    held = [HeldGpu(since=T0, reclaim_at=T0 + 12 * 60), HeldGpu(since=T0)]
    found = estimate(1, held, now=T0)
    assert found.seconds == 12 * 60
    assert found.reason == "about 12 min: a GPU held by an idle server is reclaimed at 08:12 UTC"


def test_the_estimate_uses_the_reclaim_and_the_pools_usual_holds():
    held = [HeldGpu(since=T0 - 3600, reclaim_at=T0 + 7200), HeldGpu(since=T0 - 600)]
    # The second GPU is usually held 30 min: it frees in about 20 min, before the first;
    # the first, held longer than usual, frees when the reclaim stops its idle server.
    found = estimate(1, held, now=T0, recent_holds=[1800, 1800, 600, 5400])
    assert found.seconds == 20 * 60 and "usually held 30 min" in found.reason
    second = estimate(2, held, now=T0, recent_holds=[1800])
    assert second.seconds == 7200 and "reclaimed at 10:00 UTC" in second.reason


def test_no_estimate_when_nothing_says_when_a_gpu_frees():
    found = estimate(1, [HeldGpu(since=T0)], now=T0)
    assert found.seconds is None and found.reason.startswith("no estimate")
    assert estimate(3, [HeldGpu(since=T0, reclaim_at=T0 + 60)], now=T0).seconds is None


def test_the_hosts_held_gpus_carry_the_reclaim_deadline_of_their_server():
    gpus = [Gpu(index=i, id=str(i)) for i in range(2)]
    host = GpuHost(gpus, GpuAllocator(gpus), logging.getLogger("test"))
    host.allocator.reserve("ann", "ann", [], 1)
    host.allocator.reserve("bob", "bob", [], 1)
    held = host.held_gpus({"bob": T0 + 300})
    assert sorted(h.reclaim_at or 0 for h in held) == [0, T0 + 300]
    found = estimate(1, held, now=T0)
    assert found.reason == "about 5 min: a GPU held by an idle server is reclaimed at 08:05 UTC"


def test_group_shares_order_the_line_by_what_each_group_holds_at_the_last_look(tmp_path):
    snapshot = tmp_path / "fleet.json"
    snapshot.write_text(
        json.dumps({"written_at": time.time(), "interval": 30, "held_by_group": {"vision": 3}})
    )
    register_fleet_metrics(snapshot)
    spawner = SimpleNamespace(gpu_line_group_shares={"vision": 2, "nlp": 2})
    order = WaitsInLine._serving_order(spawner, fleet_figures())
    assert order == {"held_by_group": {"vision": 3}, "shares": {"vision": 2, "nlp": 2}}
    line = WaitingLine([waiter("vic", 0, groups=("vision",)), waiter("nia", 60, groups=("nlp",))])
    # vision holds 3 GPUs against a share of 2: nia, who joined later, goes first.
    assert [w.user for w in line.order("h100", **order)] == ["nia", "vic"]
    assert line.position("vic", **order) == 2
    # No shares set: the order of joining, whatever the last look says.
    assert WaitsInLine._serving_order(SimpleNamespace(gpu_line_group_shares={}), {}) == {}


async def test_a_cluster_start_that_took_its_turn_holds_its_gpus_until_swarm_places_it():
    """Swarm's free counts lag a new service: the next in line must not take the same GPUs."""

    async def capacity(profile: str) -> Capacity:
        return Capacity(nodes=1, total=4, free=1, largest_total=4, largest_free=1)

    def spawner(key: str) -> SimpleNamespace:
        return SimpleNamespace(
            server_key=key, _capacity=capacity, _constraints=lambda p: ["node.labels.gpu==h100"]
        )

    one = Choice(profile=None, gpus=1, wait=True)  # the pool reads the count only
    first, second = ClusterPool(spawner("ann"), "h100"), ClusterPool(spawner("bob"), "h100")
    assert first.name == "cluster: node.labels.gpu==h100"
    try:
        assert await first.take(one) == ()  # Swarm picks the devices
        assert await second.free() == 0 and await second.take(one) is None
        assert second.total == 4 and second.held(None) == []
        ClusterPool.claims.pop("ann")  # ann's task is placed: the cluster counts it now
        assert await second.take(one) == ()
    finally:
        ClusterPool.claims.clear()
