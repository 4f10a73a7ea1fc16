"""What CUDADockerSpawner hands Docker when it creates a container (no engine needed)."""

from __future__ import annotations

from types import SimpleNamespace

import docker
import pytest
from dockerspawner import DockerSpawner

from spawner.docker_spawner import CUDADockerSpawner
from spawner.gpu_host import GpuHost
from spawner.spawn_settings import SpawnSettings


@pytest.fixture
def spawner(monkeypatch):
    """A spawner for user alice whose Docker calls are recorded instead of sent."""
    GpuHost.reset()
    monkeypatch.setattr(
        CUDADockerSpawner,
        "_client",
        docker.APIClient(base_url="unix:///nonexistent", version="1.41"),
    )
    user = SimpleNamespace(name="alice", groups=[], url="/user/alice/")
    s = CUDADockerSpawner(user=user, image="cudaspawner/cpu:latest", network_name="net")
    s.calls = []

    async def fake_docker(method, *args, **kwargs):
        s.calls.append((method, args, kwargs))
        return [] if method == "containers" else {"Id": "c0ffee"}

    monkeypatch.setattr(s, "docker", fake_docker)
    # JupyterHub's part of the environment needs a running hub; ours is what is tested.
    monkeypatch.setattr(DockerSpawner, "get_env", lambda self: {"JUPYTERHUB_API_TOKEN": "t"})
    s._image_info = {"Config": {"User": "", "Cmd": ["jupyterhub-singleuser"]}}
    yield s
    GpuHost.reset()


async def _created(spawner) -> dict:
    await spawner.create_object()
    ((method, _, kwargs),) = [c for c in spawner.calls if c[0] == "create_container"]
    return kwargs


async def test_hardening_lands_in_create_and_host_config(spawner):
    spawner._settings = await SpawnSettings.for_spawner(spawner, {})
    kwargs = await _created(spawner)
    host = kwargs["host_config"]
    assert kwargs["user"] == "1000:100"  # the image would run as root: never that
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 4096
    assert host["ShmSize"] == 2 * 1024**3
    assert host["AutoRemove"] is True
    assert "cudaspawner-home-alice:/home/jovyan:rw" in host["Binds"]
    # A CPU server must not see the GPUs a CUDA image would otherwise expose.
    assert kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "DeviceRequests" not in host


async def test_admin_relaxing_a_setting_is_respected(spawner):
    spawner.cap_drop = []
    spawner.no_new_privileges = False
    spawner.pids_limit = None
    spawner._settings = await SpawnSettings.for_spawner(spawner, {})
    host = (await _created(spawner))["host_config"]
    assert "CapDrop" not in host and "SecurityOpt" not in host and "PidsLimit" not in host


async def test_admin_extra_host_config_cannot_hand_out_gpus(spawner):
    spawner.gpu_inventory = ["0", "1"]
    spawner.profiles = [{"display_name": "GPU", "gpus": [0, 1]}]
    spawner.extra_host_config = {"device_requests": [{"Driver": "nvidia", "Count": -1}]}
    spawner._settings = await SpawnSettings.for_spawner(spawner, {"profile": "gpu", "gpus": 1})
    await spawner._settings.reserve_gpus(spawner)
    kwargs = await _created(spawner)
    requests_ = kwargs["host_config"]["DeviceRequests"]
    assert [r["DeviceIDs"] for r in requests_] == [["0"]]
    assert kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == "0"
    assert kwargs["labels"]["org.cudaspawner.gpus"] == "0"


async def test_root_container_user_is_refused_with_a_message(spawner):
    spawner.container_user = "0:0"
    spawner._settings = await SpawnSettings.for_spawner(spawner, {})
    with pytest.raises(Exception, match="allow_root"):
        await spawner.create_object()
    assert not [c for c in spawner.calls if c[0] == "create_container"]


async def test_a_profile_can_never_mount_the_docker_socket(spawner):
    spawner.profiles = [
        {"display_name": "Bad", "volumes": {"/var/run/docker.sock": "/var/run/docker.sock"}}
    ]
    spawner._settings = await SpawnSettings.for_spawner(spawner, {})
    with pytest.raises(Exception, match="unsafe"):
        await spawner.create_object()
    assert not [c for c in spawner.calls if c[0] == "create_container"]
