"""How a container is given its GPUs, in each request style, as data docker-py accepts."""

from __future__ import annotations

import docker
import pytest

from spawner.gpu.allocator import Gpu
from spawner.gpu.device_requests import REQUEST_STYLES, container_gpu_settings

TWO = (Gpu(0, "0", "H100"), Gpu(2, "2", "H100"))


def engine_host_config(host_config: dict) -> dict:
    """What docker-py sends to the engine (API 1.41, the oldest engine we support)."""
    return docker.APIClient(version="1.41").create_host_config(**host_config)


def test_device_requests_style_asks_for_exactly_the_assigned_gpus():
    s = container_gpu_settings("device_requests", TWO)
    assert s.environment == {"NVIDIA_VISIBLE_DEVICES": "0,2"}
    assert list(s.host_config) == ["device_requests"]
    sent = engine_host_config(s.host_config)
    assert sent["DeviceRequests"] == [
        {
            "Driver": "",
            "Count": 0,
            "DeviceIDs": ["0", "2"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]
    assert "Runtime" not in sent


def test_device_requests_style_can_name_the_nvidia_driver():
    s = container_gpu_settings("device_requests", ["GPU-aaaa"], driver="nvidia")
    (request,) = s.host_config["device_requests"]
    assert request["Driver"] == "nvidia"
    assert request["DeviceIDs"] == ["GPU-aaaa"]


def test_runtime_style_uses_the_nvidia_runtime_and_visible_devices():
    s = container_gpu_settings("runtime", ["GPU-aaaa", "GPU-bbbb"])
    assert s.environment == {"NVIDIA_VISIBLE_DEVICES": "GPU-aaaa,GPU-bbbb"}
    assert s.host_config == {"runtime": "nvidia"}
    sent = engine_host_config(s.host_config)
    assert sent["Runtime"] == "nvidia"
    assert "DeviceRequests" not in sent


def test_cdi_style_names_cdi_devices_in_a_cdi_driver_request():
    s = container_gpu_settings("cdi", [TWO[0], "GPU-bbbb"])
    assert s.environment == {"NVIDIA_VISIBLE_DEVICES": "0,GPU-bbbb"}
    sent = engine_host_config(s.host_config)
    # The engine's CDI driver rejects a count or options, so both must stay empty.
    assert sent["DeviceRequests"] == [
        {
            "Driver": "cdi",
            "Count": 0,
            "DeviceIDs": ["nvidia.com/gpu=0", "nvidia.com/gpu=GPU-bbbb"],
            "Capabilities": [],
            "Options": {},
        }
    ]


@pytest.mark.parametrize("style", REQUEST_STYLES)
def test_zero_gpus_means_no_device_request_no_runtime_and_void_devices(style):
    s = container_gpu_settings(style, [])
    # CUDA images default to NVIDIA_VISIBLE_DEVICES=all: it must be overridden.
    assert s.environment == {"NVIDIA_VISIBLE_DEVICES": "void"}
    assert s.host_config == {}


@pytest.mark.parametrize("style", REQUEST_STYLES)
def test_every_style_sets_visible_devices_to_the_assigned_ids_in_order(style):
    s = container_gpu_settings(style, [Gpu(3, "3"), Gpu(1, "1")])
    assert s.environment["NVIDIA_VISIBLE_DEVICES"] == "3,1"


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="request style"):
        container_gpu_settings("gpus", TWO)
