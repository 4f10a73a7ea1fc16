"""GPU inventory (configuration and NVML) and the allocator: placement, quotas, refusals."""

from __future__ import annotations

import asyncio
import logging
import sys
import types

import pytest

from spawner.gpu.allocator import (
    Gpu,
    GpuAllocationError,
    GpuAllocator,
    GpuQuotaExceeded,
    GpuUnavailable,
)
from spawner.gpu.inventory import (
    INVENTORY_ENV,
    driver_from_nvml,
    inventory_from_env,
    inventory_from_nvml,
    load_inventory,
)
from spawner.gpu.inventory_list import parse_inventory


def host(n: int) -> list[Gpu]:
    return [Gpu(index=i, id=str(i), name="H100") for i in range(n)]


def ids(gpus) -> list[str]:
    return [g.id for g in gpus]


# --- inventory from configuration -------------------------------------------------------


def test_config_inventory_of_indices_gives_string_ids_in_index_order():
    assert parse_inventory([2, "0", 1]) == [Gpu(0, "0"), Gpu(1, "1"), Gpu(2, "2")]


def test_config_inventory_of_uuids_orders_them_as_listed():
    gpus = parse_inventory(["GPU-bbbb-2222", "GPU-aaaa-1111"])
    assert gpus == [Gpu(0, "GPU-bbbb-2222"), Gpu(1, "GPU-aaaa-1111")]


def test_config_inventory_entries_carry_model_names_and_explicit_indices():
    gpus = parse_inventory(
        [
            {"id": "GPU-5f1c", "index": 1, "name": " NVIDIA H100 80GB HBM3 "},
            {"index": 0, "name": "NVIDIA A100"},
            {"id": 3},
        ]
    )
    assert gpus == [
        Gpu(0, "0", "NVIDIA A100"),
        Gpu(1, "GPU-5f1c", "NVIDIA H100 80GB HBM3"),
        Gpu(3, "3", ""),
    ]


def test_empty_config_inventory_means_a_cpu_only_host():
    assert parse_inventory([]) == []
    assert load_inventory("[]") == []


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        (["gpu0"], "neither a GPU index"),
        ([True], "neither a GPU index"),
        ([-1], "neither a GPU index"),
        ([1.5], "neither a GPU index"),
        ([""], "neither a GPU index"),
        ([{}], "needs an 'id'"),
        ([{"id": 0, "nmae": "H100"}], "unknown keys ['nmae']"),
        ([{"id": 0, "name": 100}], "'name' must be a string"),
        ([{"index": "first"}], "whole number"),
        ([0, "0"], "same id '0'"),
        ([1, "GPU-aaaa"], "same index 1"),
        ("0,1", "must be a list"),
        ({"0": "H100"}, "must be a list"),
    ],
)
def test_bad_config_inventory_entry_is_a_clear_value_error(entries, says):
    with pytest.raises(ValueError, match="GPU") as e:
        parse_inventory(entries)
    assert says in str(e.value)


def test_inventory_setting_text_is_nvml_or_a_json_list():
    assert load_inventory('[0, {"id": "GPU-ab", "name": "L4"}]') == [
        Gpu(0, "0"),
        Gpu(1, "GPU-ab", "L4"),
    ]
    with pytest.raises(ValueError, match='neither "nvml" nor a JSON list'):
        load_inventory("0,1")


def test_inventory_from_env_is_none_when_unset_and_parsed_when_set():
    assert inventory_from_env({}) is None
    assert inventory_from_env({INVENTORY_ENV: "[0, 1]"}) == [Gpu(0, "0"), Gpu(1, "1")]


# --- inventory from NVML ----------------------------------------------------------------


class FakeNvml(types.ModuleType):
    """Stands in for pynvml with the real exception classes."""

    def __init__(self, devices=(), init_error=None, driver="550.54.15"):
        import pynvml

        super().__init__("pynvml")
        self.driver = driver
        self.NVMLError = pynvml.NVMLError
        self.not_supported = pynvml.NVMLError_NotSupported
        self.devices = list(devices)
        self.init_error = init_error
        self.shut_down = False

    def nvmlInit(self):
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self):
        self.shut_down = True

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.devices[i]

    def nvmlDeviceGetUUID(self, handle):
        return handle[0]

    def nvmlDeviceGetName(self, handle):
        return handle[1]

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return handle[2] if len(handle) > 2 else (9, 0)

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlDeviceGetMigMode(self, handle):
        raise self.not_supported()  # as NVML answers for a GPU without MIG


def test_nvml_without_a_driver_gives_an_empty_inventory_and_says_why(monkeypatch, caplog):
    import pynvml

    fake = FakeNvml(init_error=pynvml.NVMLError_LibraryNotFound())
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with caplog.at_level(logging.WARNING):
        assert inventory_from_nvml() == []
    assert "NVML is not usable" in caplog.text


def test_nvml_on_this_machine_never_crashes(caplog):
    # The real library: on a host without the driver this is [] with a logged reason.
    with caplog.at_level(logging.WARNING):
        gpus = inventory_from_nvml()
    assert gpus or "No GPU inventory" in caplog.text


def test_nvml_inventory_uses_uuids_as_ids_and_model_names(monkeypatch):
    fake = FakeNvml(
        devices=[(b"GPU-aaaa", b"NVIDIA H100"), ("GPU-bbbb", "NVIDIA RTX PRO 6000", (12, 0))]
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert inventory_from_nvml() == [
        Gpu(0, "GPU-aaaa", "NVIDIA H100", "9.0"),
        Gpu(1, "GPU-bbbb", "NVIDIA RTX PRO 6000", "12.0"),
    ]
    assert fake.shut_down
    # The driver, for images that say which they need (issue 27).
    assert driver_from_nvml() == "550.54.15"


def test_nvml_failing_mid_listing_gives_no_half_inventory(monkeypatch, caplog):
    import pynvml

    fake = FakeNvml(devices=[("GPU-aaaa", "H100")])

    def broken(handle):
        raise pynvml.NVMLError_GpuIsLost()

    fake.nvmlDeviceGetName = broken
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with caplog.at_level(logging.WARNING):
        assert inventory_from_nvml() == []
    assert "failed while listing" in caplog.text
    assert fake.shut_down


@pytest.mark.gpu
def test_nvml_lists_the_real_gpus_of_a_gpu_host():
    import pynvml

    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        pytest.skip("no NVIDIA driver on this machine (this test needs a real GPU)")
    gpus = inventory_from_nvml()
    assert gpus, "NVML works but listed no GPUs"
    whole = [g for g in gpus if not g.is_slice]
    assert [g.index for g in whole] == list(range(len(whole)))
    assert all(g.id.startswith("GPU-") and g.name for g in whole)
    assert all(g.id.startswith("MIG-") and g.mig_profile for g in gpus if g.is_slice)
    allocator = GpuAllocator(gpus)
    first = allocator.free()[0]
    assert allocator.reserve("alice", "alice", [], 1) == (first,)


# --- placement --------------------------------------------------------------------------


def test_pack_gives_the_lowest_free_gpus():
    a = GpuAllocator(host(4))
    assert ids(a.reserve("alice", "alice", [], 1)) == ["0"]
    assert ids(a.reserve("bob", "bob", [], 2)) == ["1", "2"]
    assert ids(a.reserve("carol", "carol", [], 1)) == ["3"]


def test_pack_fills_small_holes_first_to_keep_a_block_for_multi_gpu_requests():
    a = GpuAllocator(host(8))
    for user in ["u0", "u1", "u2", "u3"]:
        a.reserve(user, user, [], 1)  # 0..3
    a.release("u1")  # hole of one at 1; block 4..7 free
    assert ids(a.reserve("single", "single", [], 1)) == ["1"]
    assert ids(a.reserve("quad", "quad", [], 4)) == ["4", "5", "6", "7"]


def test_pack_prefers_an_adjacent_block_over_scattered_lowest_gpus():
    a = GpuAllocator(host(6))
    for user in ["u0", "u1", "u2"]:
        a.reserve(user, user, [], 1)  # 0, 1, 2
    a.release("u1")  # free: 1, 3, 4, 5
    assert ids(a.reserve("pair", "pair", [], 2)) == ["3", "4"]


def test_pack_without_a_block_big_enough_takes_the_lowest_free():
    a = GpuAllocator(host(4))
    a.reserve("u0", "u0", [], 1)
    a.reserve("u1", "u1", [], 1)
    a.reserve("u2", "u2", [], 1)
    a.release("u0")
    a.release("u2")  # free: 0, 2, 3
    assert ids(a.reserve("tri", "tri", [], 3)) == ["0", "2", "3"]


def test_spread_rotates_so_successive_servers_use_every_gpu():
    a = GpuAllocator(host(4), policy="spread")
    used = []
    for i in range(8):
        used += ids(a.reserve(f"u{i}", f"u{i}", [], 1))
        a.release(f"u{i}")  # even with everything free again, the next one moves on
    assert used == ["0", "1", "2", "3", "0", "1", "2", "3"]


def test_spread_skips_held_gpus_and_wraps_around():
    a = GpuAllocator(host(4), policy="spread")
    a.reserve("a", "a", [], 3)  # 0, 1, 2
    a.release("a")
    a.reserve("b", "b", [], 1)  # 3
    assert ids(a.reserve("c", "c", [], 2)) == ["0", "1"]


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="placement"):
        GpuAllocator(host(1), policy="random")


# --- refusals and quotas ----------------------------------------------------------------


def test_too_few_free_gpus_says_how_many_are_free_of_how_many():
    a = GpuAllocator(host(4))
    a.reserve("bob", "bob", [], 3)
    with pytest.raises(GpuUnavailable) as e:
        a.reserve("alice", "alice", [], 2)
    assert str(e.value) == "2 GPUs requested, 1 free of 4; pick fewer or the CPU profile."
    assert isinstance(e.value, GpuAllocationError)
    assert (e.value.requested, e.value.free, e.value.total) == (2, 1, 4)


def test_no_free_gpu_at_all_suggests_the_cpu_profile_or_waiting():
    a = GpuAllocator(host(2))
    a.reserve("bob", "bob", [], 2)
    with pytest.raises(GpuUnavailable) as e:
        a.reserve("alice", "alice", [], 1)
    assert str(e.value) == "1 GPU requested, 0 free of 2; pick the CPU profile or try again later."


def test_gpu_request_on_a_host_without_gpus_says_so():
    with pytest.raises(GpuUnavailable) as e:
        GpuAllocator([]).reserve("alice", "alice", [], 1)
    assert str(e.value) == "1 GPU requested, but this host has no GPUs; pick the CPU profile."


def test_zero_gpus_is_always_allowed_even_with_a_zero_quota_and_no_gpus():
    assert GpuAllocator([], user_quota=0).reserve("alice", "alice", [], 0) == ()
    a = GpuAllocator(host(1))
    a.reserve("bob", "bob", [], 1)
    assert a.reserve("alice", "alice", [], 0) == ()


def test_user_at_their_limit_is_told_to_stop_a_server():
    a = GpuAllocator(host(4), user_quota=2)
    a.reserve("alice/one", "alice", [], 2)
    with pytest.raises(GpuQuotaExceeded) as e:
        a.reserve("alice/two", "alice", [], 1)
    assert str(e.value) == (
        "You already hold 2 GPUs and your limit is 2; stop a server or pick the CPU profile."
    )


def test_user_below_their_limit_is_told_how_many_more_they_can_have():
    a = GpuAllocator(host(4), user_quota=2)
    a.reserve("alice/one", "alice", [], 1)
    with pytest.raises(GpuQuotaExceeded) as e:
        a.reserve("alice/two", "alice", [], 2)
    assert str(e.value) == (
        "You already hold 1 GPU and your limit is 2, so you can have 1 more; "
        "stop a server, pick fewer, or pick the CPU profile."
    )


def test_request_above_the_limit_alone_is_told_to_pick_fewer():
    with pytest.raises(GpuQuotaExceeded) as e:
        GpuAllocator(host(8), user_quota=2).reserve("alice", "alice", [], 4)
    assert (
        str(e.value) == "You asked for 4 GPUs and your limit is 2; pick fewer or the CPU profile."
    )


def test_zero_quota_means_no_gpus_for_that_user():
    a = GpuAllocator(host(4), group_quotas={"guests": 0})
    with pytest.raises(GpuQuotaExceeded, match="may not use GPUs"):
        a.reserve("eve", "eve", ["guests"], 1)


def test_user_in_several_groups_gets_the_most_generous_group_quota():
    a = GpuAllocator(host(8), user_quota=1, group_quotas={"students": 1, "research": 4})
    assert a.quota_for("alice", ["students", "research"]) == 4
    assert len(a.reserve("alice", "alice", ["students", "research"], 4)) == 4


def test_group_quota_replaces_the_per_user_default_for_its_members():
    a = GpuAllocator(host(8), user_quota=2, group_quotas={"students": 1, "staff": None})
    assert a.quota_for("bob", []) == 2
    assert a.quota_for("bob", ["unrelated"]) == 2
    assert a.quota_for("sam", ["students"]) == 1
    assert a.quota_for("pat", ["students", "staff"]) is None  # None: no limit


def test_quota_counts_gpus_across_all_of_a_users_servers_but_not_other_users():
    a = GpuAllocator(host(4), user_quota=2)
    a.reserve("alice/a", "alice", [], 1)
    a.reserve("alice/b", "alice", [], 1)
    assert ids(a.reserve("bob", "bob", [], 2)) == ["2", "3"]
    assert a.held_by_user("alice") == 2


def test_refused_request_changes_nothing():
    a = GpuAllocator(host(3), user_quota=2)
    a.reserve("alice", "alice", [], 2)
    before = (a.holdings(), a.free())
    for server, user, count in [("alice/x", "alice", 1), ("bob", "bob", 2)]:
        with pytest.raises(GpuAllocationError):
            a.reserve(server, user, [], count)
        assert (a.holdings(), a.free()) == before


def test_negative_quota_or_count_is_a_programming_error():
    with pytest.raises(ValueError):
        GpuAllocator(host(1), user_quota=-1)
    with pytest.raises(ValueError):
        GpuAllocator(host(1)).reserve("a", "a", [], -1)


# --- release and re-reserve -------------------------------------------------------------


def test_released_gpus_go_to_the_next_user_and_release_is_idempotent():
    a = GpuAllocator(host(1))
    gpus = a.reserve("alice", "alice", [], 1)
    assert a.release("alice") == gpus
    assert a.release("alice") == ()
    assert a.release("never-started") == ()
    assert a.reserve("bob", "bob", [], 1) == gpus


def test_reserving_again_for_the_same_server_replaces_its_gpus():
    a = GpuAllocator(host(4), user_quota=2)
    a.reserve("alice", "alice", [], 2)
    # The old two count as free for the new request and against no quota.
    assert ids(a.reserve("alice", "alice", [], 2)) == ["0", "1"]
    assert ids(a.reserve("alice", "alice", [], 1)) == ["0"]
    assert a.free_count() == 3
    assert list(a.holdings()) == ["alice"]
    assert a.reserve("alice", "alice", [], 0) == ()
    assert a.free_count() == 4


def test_refused_re_reserve_keeps_the_old_gpus():
    a = GpuAllocator(host(3))
    a.reserve("alice", "alice", [], 1)
    a.reserve("bob", "bob", [], 1)
    with pytest.raises(GpuUnavailable) as e:
        a.reserve("alice", "alice", [], 3)
    assert "2 free of 3" in str(e.value)  # alice's own GPU counts as free for her
    assert ids(a.holdings()["alice"].gpus) == ["0"]


# --- restore after a hub restart --------------------------------------------------------


def test_restore_rebuilds_the_table_so_held_gpus_are_not_handed_out_again():
    a = GpuAllocator(host(3))
    assert a.restore("alice/big", "alice", ["0", "2"]) == []
    assert ids(a.holdings()["alice/big"].gpus) == ["0", "2"]
    assert ids(a.reserve("bob", "bob", [], 1)) == ["1"]
    with pytest.raises(GpuUnavailable):
        a.reserve("carol", "carol", [], 1)


def test_restore_ignores_gpus_the_inventory_no_longer_has_and_says_so(caplog):
    a = GpuAllocator(host(2))
    with caplog.at_level(logging.WARNING):
        problems = a.restore("alice", "alice", ["1", "GPU-gone"])
    assert problems == ["GPU 'GPU-gone' of server 'alice' is not in the inventory; ignored."]
    assert "GPU-gone" in caplog.text
    assert ids(a.holdings()["alice"].gpus) == ["1"]


def test_restore_conflict_keeps_the_first_holder():
    a = GpuAllocator(host(2))
    a.restore("alice", "alice", ["0"])
    problems = a.restore("bob", "bob", ["0", "1"])
    assert problems == ["GPU '0' is claimed by servers 'alice' and 'bob'; it stays with 'alice'."]
    assert ids(a.holdings()["alice"].gpus) == ["0"]
    assert ids(a.holdings()["bob"].gpus) == ["1"]


def test_restore_is_idempotent_and_holds_nothing_for_only_unknown_gpus():
    a = GpuAllocator(host(2))
    a.restore("alice", "alice", ["0"])
    assert a.restore("alice", "alice", ["0"]) == []
    assert a.free_count() == 1
    a.restore("ghost", "ghost", ["7"])
    assert "ghost" not in a.holdings()


# --- concurrency ------------------------------------------------------------------------


async def test_concurrent_spawns_holding_the_lock_never_share_a_gpu():
    a = GpuAllocator(host(4))
    assert isinstance(a.lock, asyncio.Lock)

    async def spawn(user: str):
        async with a.lock:
            await asyncio.sleep(0)  # the spawner reads container labels here
            try:
                return a.reserve(user, user, [], 1)
            except GpuUnavailable:
                return ()

    results = await asyncio.gather(*(spawn(f"u{i}") for i in range(6)))
    given = [g.id for r in results for g in r]
    assert sorted(given) == ["0", "1", "2", "3"]
    assert sum(1 for r in results if not r) == 2
