"""Issue 27, MIG slices as allocatable units (pure): the hub's inventory read through a
SIMULATED NVML (tests/gpu_hosts/*.json), the admin's list, the allocator's rules, and the
form's figures and sentences for each simulated host."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from spawner.gpu.allocator import GpuAllocator, GpuQuotaExceeded, GpuUnavailable
from spawner.gpu.inventory import read_host
from spawner.gpu.inventory_list import parse_inventory
from spawner.gpu.simulated_nvml import SimulatedNvml
from spawner.planning.availability import profile_availability
from spawner.planning.form import build_cards
from spawner.planning.profiles import ProfileConfigError, parse_profiles

HOSTS = Path(__file__).parent.parent / "gpu_hosts"


def host(name: str):
    return read_host(f"simulated-nvml:{HOSTS / name}.json", logging.getLogger("test"))


def table(name: str, **kwargs) -> GpuAllocator:
    return GpuAllocator(host(name)[0], **kwargs)


# --- the inventory: simulated NVML and the admin's list -----------------------------------


def test_nvml_lists_a_mig_gpu_and_its_seven_slices_with_profiles_and_memory():
    gpus, driver = host("h100-mig")
    assert driver == "550.54.15"
    whole, *slices = gpus
    assert whole.id.startswith("GPU-") and not whole.is_slice
    assert whole.compute_capability == "9.0"
    assert len(slices) == 7 and len({s.id for s in slices}) == 7
    for s in slices:
        assert s.id.startswith("MIG-") and s.parent == whole.id
        assert (s.mig_profile, s.memory_mib, s.compute_capability) == ("1g.10gb", 9856, "9.0")
        assert s.name == "NVIDIA H100 80GB HBM3 MIG 1g.10gb"


def test_nvml_on_a_mixed_host_lists_slices_only_under_the_gpu_in_mig_mode():
    gpus, _ = host("mixed")
    whole = [g for g in gpus if not g.is_slice]
    assert [g.name for g in whole] == ["NVIDIA H100 80GB HBM3"] * 2 + ["NVIDIA L4"]
    assert [g.compute_capability for g in whole] == ["9.0", "9.0", "8.9"]
    parents = {g.parent for g in gpus if g.is_slice}
    assert parents == {whole[1].id}
    assert GpuAllocator(gpus).mig_profiles() == {"3g.40gb": 1, "1g.10gb": 4}


def test_nvml_without_a_driver_is_an_empty_inventory_with_a_reason(caplog):
    from spawner.gpu.inventory import inventory_from_nvml

    nvml = SimulatedNvml({"no_driver": True, "gpus": []})
    assert inventory_from_nvml(logging.getLogger("t"), nvml) == []
    assert "NVML is not usable" in caplog.text


def test_a_simulated_host_file_that_cannot_be_read_says_which():
    with pytest.raises(ValueError, match="Cannot read the simulated NVML host"):
        read_host("simulated-nvml:/nonexistent/host.json")


def test_the_admins_list_gives_slices_under_their_gpu():
    gpus = parse_inventory(
        [
            {"id": "GPU-aa", "name": "H100", "compute_capability": "9.0", "mig": [
                {"id": "MIG-aa-1", "profile": "3g.40gb", "memory_mib": 40192},
                {"id": "MIG-aa-2", "profile": "1g.10gb"},
            ]},
            {"id": "GPU-bb", "name": "H100"},
        ]
    )  # fmt: skip
    assert [(g.id, g.index, g.parent, g.mig_profile) for g in gpus] == [
        ("GPU-aa", 0, "", ""),
        ("MIG-aa-1", 0, "GPU-aa", "3g.40gb"),
        ("MIG-aa-2", 0, "GPU-aa", "1g.10gb"),
        ("GPU-bb", 1, "", ""),
    ]
    assert gpus[1].name == "H100 MIG 3g.40gb" and gpus[1].compute_capability == "9.0"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"id": "GPU-aa", "mig": [{"id": "GPU-bb", "profile": "1g.10gb"}]}, "not a MIG device"),
        ({"id": "GPU-aa", "mig": [{"id": "MIG-1", "profile": "half"}]}, "not a MIG profile"),
        ({"id": "GPU-aa", "mig": [{"id": "MIG-1", "profile": "1g.10gb", "gb": 9}]}, "must be"),
        ({"id": "GPU-aa", "mig": "1g.10gb"}, "must be a list"),
        ({"id": "MIG-aa"}, "listed under its GPU"),
    ],
)
def test_a_bad_slice_in_the_admins_list_is_a_clear_error(entry, says):
    with pytest.raises(ValueError, match="GPU inventory entry 0") as e:
        parse_inventory([entry])
    assert says in str(e.value)


def test_the_same_slice_twice_is_refused():
    slices = [{"id": "MIG-1", "profile": "1g.10gb"}]
    with pytest.raises(ValueError, match="same id 'MIG-1'"):
        parse_inventory([{"id": "GPU-a", "mig": slices}, {"id": "GPU-b", "mig": slices}])


# --- the allocator -----------------------------------------------------------------------


def test_seven_users_get_seven_distinct_slices_and_the_eighth_a_sentence():
    t = table("h100-mig")
    given = [t.reserve(f"u{i}", f"u{i}", [], 1, mig="1g.10gb") for i in range(7)]
    ids = [g.id for (g,) in given]
    assert len(set(ids)) == 7 and all(i.startswith("MIG-") for i in ids)
    with pytest.raises(GpuUnavailable) as e:
        t.reserve("u7", "u7", [], 1, mig="1g.10gb")
    assert str(e.value) == (
        "1 MIG 1g.10gb slice requested, 0 free of 7; pick the CPU profile or try again later."
    )


def test_a_whole_gpu_is_never_given_while_a_slice_of_it_is_held_and_the_reverse():
    t = table("h100-mig")
    assert (t.total, t.free_count(), t.free_slices("1g.10gb")) == (1, 1, 7)
    t.reserve("ann", "ann", [], 1, mig="1g.10gb")
    assert (t.free_count(), t.free_slices("1g.10gb")) == (0, 6)
    with pytest.raises(GpuUnavailable, match="1 GPU requested, 0 free of 1"):
        t.reserve("bob", "bob", [], 1)
    t.release("ann")
    (whole,) = t.reserve("bob", "bob", [], 1)
    assert not whole.is_slice
    assert t.free_slices("1g.10gb") == 0
    with pytest.raises(GpuUnavailable, match="0 free of 7"):
        t.reserve("ann", "ann", [], 1, mig="1g.10gb")


def test_a_profile_the_host_does_not_have_is_refused_saying_so():
    with pytest.raises(GpuUnavailable) as e:
        table("h100-mig").reserve("ann", "ann", [], 1, mig="3g.40gb")
    assert str(e.value) == (
        "1 MIG 3g.40gb slice requested, but this host has no MIG 3g.40gb slices; "
        "pick the CPU profile."
    )


def test_pack_fills_the_gpu_already_split_and_spread_the_least_used():
    gpus = parse_inventory(
        [
            {"id": "GPU-a", "mig": [{"id": f"MIG-a{i}", "profile": "1g.10gb"} for i in range(3)]},
            {"id": "GPU-b", "mig": [{"id": f"MIG-b{i}", "profile": "1g.10gb"} for i in range(3)]},
        ]
    )
    packed = GpuAllocator(gpus, policy="pack")
    packed.reserve("x", "x", [], 1, mig="1g.10gb")
    # The second slice comes from the same GPU: GPU-b stays whole for a whole-GPU request.
    assert packed.reserve("y", "y", [], 1, mig="1g.10gb")[0].parent == "GPU-a"
    assert packed.free_count() == 1
    spread = GpuAllocator(gpus, policy="spread")
    spread.reserve("x", "x", [], 1, mig="1g.10gb")
    assert spread.reserve("y", "y", [], 1, mig="1g.10gb")[0].parent == "GPU-b"


def test_a_slice_counts_as_one_gpu_against_the_quota():
    t = table("h100-mig", user_quota=1)
    t.reserve("ann", "ann", [], 1, mig="1g.10gb")
    with pytest.raises(GpuQuotaExceeded):
        t.reserve("ann/second", "ann", [], 1, mig="1g.10gb")


def test_a_restart_restores_slices_and_never_a_whole_gpu_over_them():
    gpus, _ = host("h100-mig")
    t = GpuAllocator(gpus)
    assert t.restore("ann", "ann", [gpus[1].id]) == []
    assert t.restore("bob", "bob", [gpus[2].id]) == []
    problems = t.restore("eve", "eve", [gpus[0].id])  # a label naming the whole GPU
    assert problems and "stays with" in problems[0]
    assert t.free_slices("1g.10gb") == 5 and t.free_count() == 0
    assert {h.gpus[0].id for h in t.holdings().values()} == {gpus[1].id, gpus[2].id}


# --- the form on each simulated host ----------------------------------------------------

PROFILES = parse_profiles(
    [
        {"slug": "cpu", "display_name": "CPU only"},
        {"slug": "gpu", "display_name": "One GPU", "gpus": 1},
        {"slug": "small", "display_name": "A small slice", "mig": "1g.10gb"},
        {"slug": "half", "display_name": "Half a GPU", "mig": "3g.40gb"},
    ]
)


def cards(t: GpuAllocator):
    slices = {p: (t.free_slices(p), n) for p, n in t.mig_profiles().items()}
    figures = profile_availability(PROFILES, t.free_count(), t.total, slices, {})
    return {c.slug: c for c in build_cards(PROFILES, None, figures, t.total)}


def test_the_form_counts_slices_per_profile_and_names_what_the_host_lacks():
    t = table("h100-mig")
    t.reserve("ann", "ann", [], 1, mig="1g.10gb")
    shown = cards(t)
    assert (shown["small"].free, shown["small"].total, shown["small"].disabled) == (6, 7, False)
    assert shown["small"].fixed_gpus_label == "1 MIG 1g.10gb slice"
    assert shown["gpu"].reason == "needs 1 GPU, 0 free of 1"
    assert shown["half"].reason == "This host has no MIG 3g.40gb slices"
    assert not shown["cpu"].disabled


def test_the_form_on_a_mixed_host():
    t = table("mixed")
    shown = cards(t)
    assert (shown["gpu"].free, shown["gpu"].total) == (3, 3)
    assert (shown["small"].free, shown["small"].total) == (4, 4)
    assert (shown["half"].free, shown["half"].total) == (1, 1)
    t.reserve("ann", "ann", [], 1, mig="3g.40gb")
    shown = cards(t)
    # The split H100 is no longer offered whole; the other two are.
    assert (shown["gpu"].free, shown["half"].free, shown["half"].disabled) == (2, 0, True)


def test_a_mig_profile_is_checked_when_the_hub_starts():
    (p,) = parse_profiles([{"display_name": "Slice", "mig": "2g.20gb"}])
    assert (p.mig, p.gpu_choices) == ("2g.20gb", (1,))
    with pytest.raises(ProfileConfigError, match="not a MIG profile name"):
        parse_profiles([{"display_name": "Slice", "mig": "half"}])
    with pytest.raises(ProfileConfigError, match="every count must be 1 or more"):
        parse_profiles([{"display_name": "Slice", "mig": "1g.10gb", "gpus": [0, 1]}])


# --- the admin's views -------------------------------------------------------------------


def test_the_admin_page_shows_the_slice_held_and_free_only_what_could_be_given():
    from spawner.services.fleet import GpuServer, fleet_rows, summarise

    gpus, _ = host("h100-mig")
    ann = GpuServer(user="ann", name="", key="ann", gpu_ids=(gpus[3].id,), profile="small")
    live = {"ann": [{"uuid": gpus[3].id, "memory_used": 1 << 30, "memory_total": 9856 << 20}]}
    rows = fleet_rows([ann], gpus, live, {}, now=0.0)
    (held,) = [r for r in rows if not r.free]
    assert (held.gpu, held.model, held.memory_total) == (
        gpus[3].id, "NVIDIA H100 80GB HBM3 MIG 1g.10gb", 9856 << 20,
    )  # fmt: skip
    # The split GPU is not free while a slice of it is held; the six other slices are.
    assert sorted(r.gpu for r in rows if r.free) == sorted(g.id for g in gpus[1:] if g != gpus[3])
    assert summarise(rows, [ann], gpus).total == 1


def test_the_gpus_command_counts_slices_as_free_only_when_they_could_be_given():
    from spawner.admin.gpus_cli import build_report, render_table

    gpus, _ = host("h100-mig")
    labels = {"org.cudaspawner.user": "ann", "org.cudaspawner.server": "ann",
              "org.cudaspawner.gpus": gpus[0].id}  # fmt: skip
    container = {"Id": "c1", "Names": ["/jupyter-ann"], "Labels": labels, "State": "running"}
    report = build_report([container], gpus)
    assert report.free == ()  # the whole GPU is held: none of its slices can be given
    assert render_table(report).endswith("0 of 8 GPUs and MIG slices free: none.")
