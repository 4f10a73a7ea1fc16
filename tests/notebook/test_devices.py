"""Which GPUs a server shows, from NVIDIA_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES (pure)."""

from __future__ import annotations

import pytest

from nbextension.backend import DeviceIdentity
from nbextension.devices import declares_no_gpu, select_visible

UUIDS = [f"GPU-aaaaaaaa-0000-0000-0000-00000000000{i}" for i in range(4)]
HOST = [DeviceIdentity(i, UUIDS[i]) for i in range(4)]  # a machine where the driver shows all 4


def shown(devices, nvidia=None, cuda=None):
    visibility = select_visible(devices, nvidia, cuda)
    return visibility.state, list(visibility.indices)


def test_unset_or_all_shows_every_device():
    assert shown(HOST) == ("ok", [0, 1, 2, 3])
    assert shown(HOST, "all") == ("ok", [0, 1, 2, 3])
    assert shown(HOST, " ALL ") == ("ok", [0, 1, 2, 3])


@pytest.mark.parametrize("value", ["void", "none", "", "  ", "VOID"])
def test_void_none_or_empty_means_no_gpu(value):
    assert shown(HOST, value)[0] == "no_gpu"
    assert declares_no_gpu(value)


def test_unset_variable_does_not_declare_no_gpu():
    assert not declares_no_gpu(None)
    assert not declares_no_gpu("0")


def test_index_list_selects_those_devices_on_a_host():
    assert shown(HOST, "1,3") == ("ok", [1, 3])
    assert shown(HOST, "2") == ("ok", [2])


def test_uuid_list_selects_those_devices_case_insensitively():
    assert shown(HOST, f"{UUIDS[2]},{UUIDS[0].lower()}") == ("ok", [2, 0])


def test_host_indices_inside_a_container_keep_the_renumbered_devices():
    # NVIDIA_VISIBLE_DEVICES=2,3: the runtime exposed host GPUs 2 and 3 as 0 and 1.
    container = [DeviceIdentity(0, UUIDS[2]), DeviceIdentity(1, UUIDS[3])]
    assert shown(container, "2,3") == ("ok", [0, 1])
    assert shown(container[:1], "3") == ("ok", [0])


def test_uuids_inside_a_container_still_match():
    container = [DeviceIdentity(0, UUIDS[2])]
    assert shown(container, UUIDS[2]) == ("ok", [0])


def test_unknown_uuid_reports_no_devices_with_the_missing_id():
    visibility = select_visible(HOST, "GPU-ffffffff-dead-beef-0000-000000000000", None)
    assert visibility.state == "no_devices"
    assert "GPU-ffffffff-dead-beef" in visibility.detail


def test_mig_uuid_and_pair_select_the_parent_gpu():
    devices = [DeviceIdentity(0, UUIDS[0]), DeviceIdentity(1, UUIDS[1], ("MIG-1111", "MIG-2222"))]
    assert shown(devices, "MIG-2222") == ("ok", [1])
    assert shown(devices, "1:0") == ("ok", [1])


def test_cuda_visible_devices_indexes_the_remaining_list():
    # After NVIDIA_VISIBLE_DEVICES=1,3 CUDA numbers them 0 and 1: "1" is host GPU 3.
    assert shown(HOST, "1,3", "1") == ("ok", [3])
    assert shown(HOST, None, "2,0") == ("ok", [2, 0])


def test_cuda_visible_devices_accepts_uuid_prefixes():
    assert shown(HOST, None, "GPU-aaaaaaaa-0000-0000-0000-000000000002") == ("ok", [2])
    # An ambiguous prefix names no single device, and CUDA stops reading there.
    assert shown(HOST, None, "1,GPU-aaaa,2") == ("ok", [1])


def test_cuda_visible_devices_stops_at_the_first_invalid_entry():
    assert shown(HOST, None, "0,7,1") == ("ok", [0])
    assert shown(HOST, None, "-1")[0] == "no_gpu"
    assert shown(HOST, None, "")[0] == "no_gpu"
