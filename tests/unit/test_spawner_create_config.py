"""What CUDADockerSpawner hands Docker when it creates a container (no engine needed)."""

from __future__ import annotations

from types import SimpleNamespace

import docker
import pytest
from dockerspawner import DockerSpawner
from tornado import web
from traitlets import TraitError

from spawner.docker_edge.spawner import CUDADockerSpawner
from spawner.gpu.host import GpuHost


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
    s = CUDADockerSpawner(
        user=user, image="cudaspawner/cpu:latest", network_name="net", hub_id="unit-hub"
    )
    s.calls = []

    async def fake_docker(method, *args, **kwargs):
        s.calls.append((method, args, kwargs))
        if method == "inspect_image":  # an image that would run as root
            return {"Id": "sha256:c0ffee", "Config": {"User": "", "Cmd": ["jupyterhub-singleuser"]}}
        return [] if method == "containers" else {"Id": "c0ffee"}

    monkeypatch.setattr(s, "docker", fake_docker)
    # JupyterHub's part of the environment needs a running hub; ours is what is tested.
    monkeypatch.setattr(DockerSpawner, "get_env", lambda self: {"JUPYTERHUB_API_TOKEN": "t"})
    yield s
    GpuHost.reset()


async def _created(spawner, options: dict | None = None) -> dict:
    await spawner.apply_user_options(spawner, options or {})
    await spawner.create_object()
    *_, (method, _, kwargs) = [c for c in spawner.calls if c[0] == "create_container"]
    return kwargs


async def test_hardening_lands_in_create_and_host_config(spawner):
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
    host = (await _created(spawner))["host_config"]
    assert "CapDrop" not in host and "SecurityOpt" not in host and "PidsLimit" not in host


async def test_admin_extra_host_config_cannot_hand_out_gpus(spawner):
    spawner.gpu_inventory = ["0", "1"]
    spawner.profiles = [{"display_name": "GPU", "gpus": [0, 1]}]
    spawner.extra_host_config = {"device_requests": [{"Driver": "nvidia", "Count": -1}]}
    kwargs = await _created(spawner, {"profile": "gpu", "gpus": 1})
    requests_ = kwargs["host_config"]["DeviceRequests"]
    assert [r["DeviceIDs"] for r in requests_] == [["0"]]
    assert kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == "0"
    assert kwargs["labels"]["org.cudaspawner.gpus"] == "0"


async def test_root_container_user_is_refused_with_a_message(spawner):
    spawner.container_user = "0:0"
    with pytest.raises(Exception, match="allow_root"):
        await _created(spawner)
    assert not [c for c in spawner.calls if c[0] == "create_container"]


async def test_a_profile_can_never_mount_the_docker_socket(spawner):
    spawner.profiles = [
        {"display_name": "Bad", "volumes": {"/var/run/docker.sock": "/var/run/docker.sock"}}
    ]
    with pytest.raises(Exception, match="unsafe"):
        await _created(spawner)
    assert not [c for c in spawner.calls if c[0] == "create_container"]


# --- drop-in behaviour a DockerSpawner deployment relies on ----------------------------------


def test_without_profiles_or_image_choices_there_is_no_form_and_a_spawn_starts_at_once(spawner):
    assert spawner.options_form == ""
    spawner.allowed_images = {"1.0": "jupyterhub/singleuser:1.0"}
    assert spawner._default_options_form() == ""


def test_profiles_or_several_allowed_images_give_a_form(spawner):
    spawner.allowed_images = ["a:1", "b:2"]
    assert callable(spawner._default_options_form())
    spawner.allowed_images = {}
    spawner.profiles = [{"display_name": "CPU"}]
    assert callable(spawner._default_options_form())


def test_options_from_form_can_be_called_directly_with_the_form_data(spawner):
    assert spawner.options_from_form({"image": ["1.0", "1.1"]}) == {"image": "1.0"}
    assert spawner.options_from_form({"profile": ["cpu"], "gpus-cpu": ["0"]}) == {
        "profile": "cpu",
        "gpus": 0,
    }
    with pytest.raises(web.HTTPError) as failure:
        spawner.options_from_form({"profile": ["cpu"], "gpus-cpu": ["two"]})
    assert failure.value.status_code == 400 and "whole number" in failure.value.log_message


@pytest.mark.parametrize(
    ("allowed", "options", "image"),
    [
        ({"4.0": "singleuser:4.0", "4": "singleuser:4"}, {"image": "4.0"}, "singleuser:4.0"),
        (["singleuser:4.0", "singleuser:4"], {"image": "singleuser:4"}, "singleuser:4"),
        (lambda spawner: ["singleuser:4.0"], {"image": "singleuser:4.0"}, "singleuser:4.0"),
        ("*", {"image": "anything:1"}, "anything:1"),
        ({"4.0": "singleuser:4.0"}, {}, "cudaspawner/cpu:latest"),
    ],
)
async def test_allowed_images_are_honoured_as_dockerspawner_does(spawner, allowed, options, image):
    spawner.allowed_images = allowed
    kwargs = await _created(spawner, options)
    assert kwargs["image"] == image and spawner.image == image
    assert kwargs["environment"]["CUDASPAWNER_IMAGE"] == image


@pytest.mark.parametrize(
    ("allowed", "options", "says"),
    [
        ({}, {"image": "cudaspawner/cpu:latest"}, "Choosing an image is not allowed"),
        (["singleuser:4"], {"image": "not-in-list"}, "is not offered"),
    ],
)
async def test_an_image_outside_allowed_images_is_a_400(spawner, allowed, options, says):
    spawner.allowed_images = allowed
    with pytest.raises(web.HTTPError) as failure:
        await spawner.apply_user_options(spawner, options)
    assert failure.value.status_code == 400 and says in failure.value.log_message


async def test_the_chosen_image_does_not_become_the_next_starts_default(spawner):
    spawner.allowed_images = ["singleuser:4"]
    await _created(spawner, {"image": "singleuser:4"})
    spawner._start = spawner._choice = None  # what the end of start() does
    assert (await _created(spawner, {}))["image"] == "cudaspawner/cpu:latest"


async def test_an_admin_apply_user_options_hook_runs_after_validation(spawner):
    seen = []
    spawner.apply_user_options = lambda s, options: seen.append((s._choice.profile.slug, options))
    await spawner.apply_user_options(spawner, {})
    assert seen == [("default", {})]
    with pytest.raises(TraitError, match="callable"):
        spawner.apply_user_options = {"image_input": "image"}


async def test_a_stopped_container_from_another_plan_is_recreated_not_restarted(spawner):
    spawner.remove = False
    spawner.gpu_inventory = ["GPU-a", "GPU-b"]
    spawner.profiles = [{"display_name": "GPU", "gpus": 1}]
    await spawner.apply_user_options(spawner, {})
    start = await spawner.prepare_start()
    ours = {"org.cudaspawner.hub": "unit-hub"}
    old = {"Id": "old", "Config": {"Labels": {**ours, "org.cudaspawner.plan": "another"}}}
    same = {"Id": "same", "Config": {"Labels": {**ours, "org.cudaspawner.plan": start.fingerprint}}}

    async def inspect_returns(container):
        async def fake(method, *args, **kwargs):
            spawner.calls.append((method, args, kwargs))
            return container

        spawner.docker = fake

    await inspect_returns(same)
    await spawner._drop_outdated_container(start.fingerprint)
    assert not [c for c in spawner.calls if c[0] == "remove_container"]
    await inspect_returns(old)
    await spawner._drop_outdated_container(start.fingerprint)
    assert [c[1] for c in spawner.calls if c[0] == "remove_container"] == [("old",)]
    assert spawner.object_id == ""
