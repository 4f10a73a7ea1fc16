"""Which GPUs a container holds, read from `docker inspect` (issue 14): pure parsing."""

from __future__ import annotations

from spawner.gpu.allocator import Gpu
from spawner.gpu.claims import container_claim, resolve

INVENTORY = [Gpu(0, "GPU-aaaa", "H100"), Gpu(1, "GPU-bbbb", "H100"), Gpu(2, "GPU-cccc", "H100")]


def inspected(*, requests=(), env=(), runtime="runc", devices=(), name="/job") -> dict:
    return {
        "Id": "0123456789abcdef",
        "Name": name,
        "Config": {"Env": list(env)},
        "HostConfig": {
            "Runtime": runtime,
            "DeviceRequests": list(requests) or None,
            "Devices": list(devices),
        },
    }


def gpu_request(ids=None, count=0, driver=""):
    return {"Driver": driver, "Count": count, "DeviceIDs": ids, "Capabilities": [["gpu"]]}


def held(container: dict, default_runtime: str = "runc") -> list[str]:
    claim = container_claim(container, default_runtime)
    return [g.id for g in resolve(claim.refs, INVENTORY)[0]] if claim else []


def test_docker_run_gpus_device_holds_that_gpu_by_index_or_uuid():
    assert held(inspected(requests=[gpu_request(ids=["1"])])) == ["GPU-bbbb"]
    assert held(inspected(requests=[gpu_request(ids=["GPU-cccc"])])) == ["GPU-cccc"]
    # `--gpus '"device=0,2"'` arrives as one comma list
    assert held(inspected(requests=[gpu_request(ids=["0,2"])])) == ["GPU-aaaa", "GPU-cccc"]


def test_gpus_all_and_a_count_hold_what_the_toolkit_gives():
    assert held(inspected(requests=[gpu_request(count=-1)])) == [g.id for g in INVENTORY]
    assert held(inspected(requests=[gpu_request(count=2)])) == ["GPU-aaaa", "GPU-bbbb"]


def test_a_device_request_for_something_else_holds_no_gpu():
    other = {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["tpu"]]}
    assert container_claim(inspected(requests=[other])) is None


def test_cdi_names_in_a_device_request_or_as_devices_hold_those_gpus():
    cdi = {"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=GPU-bbbb"], "Capabilities": None}
    assert held(inspected(requests=[cdi])) == ["GPU-bbbb"]
    device = {"PathOnHost": "nvidia.com/gpu=2", "PathInContainer": "", "CgroupPermissions": ""}
    claim = container_claim(inspected(devices=[device]))
    assert claim.how == "CDI" and held(inspected(devices=[device])) == ["GPU-cccc"]


def test_nvidia_visible_devices_counts_only_under_the_nvidia_runtime():
    env = ["PATH=/usr/bin", "NVIDIA_VISIBLE_DEVICES=GPU-aaaa,2"]
    assert held(inspected(env=env, runtime="nvidia")) == ["GPU-aaaa", "GPU-cccc"]
    # A CUDA image sets NVIDIA_VISIBLE_DEVICES=all; under runc that gives no GPU.
    assert container_claim(inspected(env=["NVIDIA_VISIBLE_DEVICES=all"])) is None
    # ... unless the engine's default runtime is nvidia and the container names none.
    assert len(held(inspected(env=["NVIDIA_VISIBLE_DEVICES=all"], runtime=""), "nvidia")) == 3


def test_void_none_or_empty_visible_devices_hold_nothing():
    for value in ("void", "none", "", "NONE"):
        env = [f"NVIDIA_VISIBLE_DEVICES={value}"]
        assert container_claim(inspected(env=env, runtime="nvidia")) is None


def test_the_claim_names_the_container_and_how_it_asked():
    claim = container_claim(
        inspected(requests=[gpu_request(ids=["0"])], name="/training-job", runtime="nvidia")
    )
    assert claim.container == "training-job" and claim.how == "device request"


def test_references_the_inventory_does_not_know_are_reported_not_guessed():
    gpus, unknown = resolve(("7", "GPU-zzzz", "1"), INVENTORY)
    assert [g.id for g in gpus] == ["GPU-bbbb"] and unknown == ["7", "GPU-zzzz"]


def test_the_admin_table_shows_an_outside_gpu_with_its_container():
    from spawner.admin.gpus_cli import OUTSIDE, build_report, render_table

    claim = container_claim(inspected(requests=[gpu_request(ids=["1"])], name="/train"))
    report = build_report([], INVENTORY, [claim])
    row = next(r for r in report.rows if r.gpu == "GPU-bbbb")
    assert (row.user, row.container, row.status) == (OUTSIDE, "train", "running")
    assert [g.id for g in report.free] == ["GPU-aaaa", "GPU-cccc"]
    assert "outside the hub" in render_table(report)
