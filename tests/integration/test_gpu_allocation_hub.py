"""Issue 4 on the real engine: exact devices, clear refusals, a table that survives restarts.

This engine has no GPU. Where a GPU container must actually run, the test engine's
runtime named `nvidia` is a stand-in that points at runc (`dockerd --add-runtime
nvidia=runc`, as scripts/test.sh starts it): the containers start and carry exactly the
devices they were given, but see no GPU.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import docker
import pytest
from dockerspawner import DockerSpawner

from spawner.docker_edge.spawner import CUDADockerSpawner
from spawner.gpu.host import GpuHost
from tests.hubtools import Browser, container_of, hub_containers

pytestmark = [pytest.mark.docker]

GPU_PROFILES = """
c.CUDADockerSpawner.gpu_inventory = [
    {"id": "0", "name": "Stand-in A100"}, {"id": "1", "name": "Stand-in A100"},
    {"id": "2", "name": "Stand-in A100"}, {"id": "3", "name": "Stand-in A100"},
]
c.CUDADockerSpawner.profiles = [
    {"slug": "cpu", "display_name": "CPU only", "default": True},
    {"slug": "gpu", "display_name": "GPU", "gpus": {"choices": [1, 2, 4], "default": 1}},
]
c.Spawner.poll_interval = 1
"""


def _env(container) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])


async def test_device_requests_container_carries_exactly_the_assigned_devices(
    docker_client, monkeypatch
):
    """The spawner's own create path against the real engine, inspected before any start."""
    GpuHost.reset()
    user = SimpleNamespace(name="dora", groups=[], url="/user/dora/")
    spawner = CUDADockerSpawner(
        user=user,
        image="cudaspawner/cpu:latest",
        network_name="bridge",
        gpu_inventory=["GPU-aaaa", "GPU-bbbb", "GPU-cccc"],
        profiles=[{"display_name": "GPU", "gpus": [1, 2]}],
        name_template="cudaspawner-devreq-test-{username}",
    )
    monkeypatch.setattr(DockerSpawner, "get_env", lambda self: {})
    try:
        await spawner.apply_user_options(spawner, {"profile": "gpu", "gpus": 2})
        created = await spawner.create_object()
        c = docker_client.containers.get(created["Id"])
        requests_ = c.attrs["HostConfig"]["DeviceRequests"]
        assert [r["DeviceIDs"] for r in requests_] == [["GPU-aaaa", "GPU-bbbb"]]
        assert requests_[0]["Capabilities"] == [["gpu"]]
        assert _env(c)["NVIDIA_VISIBLE_DEVICES"] == "GPU-aaaa,GPU-bbbb"
        assert c.labels["org.cudaspawner.gpus"] == "GPU-aaaa,GPU-bbbb"
    finally:
        for c in docker_client.containers.list(
            all=True, filters={"name": "cudaspawner-devreq-test"}
        ):
            c.remove(force=True)
        GpuHost.reset()


@pytest.mark.hub
def test_gpu_start_on_an_engine_without_gpu_support_is_a_clear_message_and_frees_gpus(
    hub_factory, docker_client
):
    hub = hub_factory(GPU_PROFILES)
    browser = Browser(hub)
    assert browser.login("erin", hub.user_password).status_code == 302
    r = browser.spawn("erin", {"profile": "gpu", "gpus": 4})
    assert r.status_code == 400, r.text
    assert "install the NVIDIA Container Toolkit" in r.json()["message"]
    assert hub_containers(docker_client, hub) == []
    # All four GPUs are free again: the form says so.
    form = browser.get("hub/spawn/erin").text
    assert "4 of 4 free right now" in form


@pytest.mark.hub
def test_twenty_concurrent_users_four_gpus_restart_and_kill(hub_factory, docker_client):
    hub = hub_factory(GPU_PROFILES + 'c.CUDADockerSpawner.gpu_request_style = "runtime"\n')
    users = [f"gpu{i:02d}" for i in range(20)]
    hub.api("POST", "users", json={"usernames": [*users, "late1", "late2"]})

    def spawn(user: str):
        return hub.api("POST", f"users/{user}/server", json={"profile": "gpu"})

    with ThreadPoolExecutor(20) as pool:
        responses = dict(zip(users, pool.map(spawn, users), strict=True))
    started = [u for u, r in responses.items() if r.status_code in (201, 202)]
    refused = [u for u, r in responses.items() if r.status_code == 409]
    assert len(started) == 4 and len(refused) == 16, {
        u: r.status_code for u, r in responses.items()
    }
    for u in refused:
        assert responses[u].json()["message"] == (
            "1 GPU requested, 0 free of 4; pick the CPU profile or try again later."
        )
    for u in started:
        hub.wait_ready(u)
    devices = {u: _env(container_of(docker_client, u))["NVIDIA_VISIBLE_DEVICES"] for u in started}
    assert sorted(devices.values()) == ["0", "1", "2", "3"]
    for u in started:
        assert container_of(docker_client, u).attrs["HostConfig"]["Runtime"] == "nvidia"
    assert len(hub_containers(docker_client, hub)) == 4

    # A new hub process rebuilds the table from the containers' labels before any spawn.
    hub.stop()
    hub.start()
    r = spawn("late1")
    assert r.status_code == 409, r.text
    assert "0 free of 4" in r.json()["message"]

    # A container killed behind the hub's back frees its GPU at the next poll.
    victim = started[0]
    container_of(docker_client, victim).kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = spawn("late2")
        if r.status_code in (201, 202):
            break
        assert r.status_code == 409, r.text
        time.sleep(1)
    else:
        raise AssertionError("the killed container's GPU was never freed")
    hub.wait_ready("late2")
    assert _env(container_of(docker_client, "late2"))["NVIDIA_VISIBLE_DEVICES"] == devices[victim]
    for u in [*started[1:], "late2"]:
        hub.api("DELETE", f"users/{u}/server")
    for u in [*started[1:], "late2"]:
        hub.wait_stopped(u)
    assert hub_containers(docker_client, hub) == []


@pytest.mark.hub
def test_spawn_progress_tells_the_user_which_gpus_and_each_step(hub_factory, docker_client):
    hub = hub_factory(GPU_PROFILES + 'c.CUDADockerSpawner.gpu_request_style = "runtime"\n')
    hub.api("POST", "users", json={"usernames": ["pia"]})
    # Watch the progress stream while the spawn is pending, as the hub's spawn page does.
    with ThreadPoolExecutor(1) as pool:
        post = pool.submit(hub.api, "POST", "users/pia/server", json={"profile": "gpu", "gpus": 2})
        stream = hub.api("GET", "users/pia/server/progress", stream=True)
        while stream.status_code != 200 and not post.done():
            time.sleep(0.05)
            stream = hub.api("GET", "users/pia/server/progress", stream=True)
        events = []
        with stream:
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("ready") or events[-1].get("failed"):
                        break
        assert post.result().status_code in (201, 202)
    messages = [e.get("message", "") for e in events]
    assert "reserving 2 GPUs (0, 1)" in messages
    assert messages.index("reserving 2 GPUs (0, 1)") < messages.index("creating container")
    assert "starting container" in messages
    assert events[-1].get("ready"), events
    hub.api("DELETE", "users/pia/server")
    hub.wait_stopped("pia")


def test_docker_client_is_real():
    # Guard: this module must run against a real engine, never a mock.
    assert isinstance(docker.from_env().version()["ApiVersion"], str)


@pytest.mark.hub
def test_with_remove_false_a_restart_gets_its_new_gpus_and_a_same_plan_reuses_the_container(
    hub_factory, docker_client
):
    """Issue 13: a kept container is restarted only when its plan is unchanged."""
    two_gpus = """
c.CUDADockerSpawner.gpu_inventory = [{"id": "GPU-a"}, {"id": "GPU-b"}]
c.CUDADockerSpawner.profiles = [{"slug": "gpu", "display_name": "GPU", "gpus": 1}]
c.CUDADockerSpawner.gpu_request_style = "runtime"
c.DockerSpawner.remove = False
"""
    hub = hub_factory(two_gpus)
    hub_factory.volumes.extend(["cudaspawner-home-alice", "cudaspawner-home-bob"])
    hub.api("POST", "users", json={"usernames": ["alice", "bob"]})

    def start(user: str):
        r = hub.api("POST", f"users/{user}/server", json={})
        assert r.status_code in (201, 202), r.text
        hub.wait_ready(user)
        c = container_of(docker_client, user)
        return c, _env(c)["NVIDIA_VISIBLE_DEVICES"]

    def stop(user: str) -> None:
        hub.api("DELETE", f"users/{user}/server")
        hub.wait_stopped(user)

    first, gpu = start("alice")
    assert gpu == "GPU-a"
    stop("alice")
    first.reload()
    assert first.status == "exited"  # kept, as remove = False asks
    _, bobs = start("bob")
    assert bobs == "GPU-a"
    # Alice's old container names GPU-a, which bob now holds: it must not come back.
    second, gpu = start("alice")
    assert gpu == "GPU-b" and second.labels["org.cudaspawner.gpus"] == "GPU-b"
    assert second.id != first.id
    stop("alice")
    # The same plan again (GPU-b is still hers to take): the kept container is reused.
    third, gpu = start("alice")
    assert gpu == "GPU-b" and third.id == second.id
    stop("alice")
    stop("bob")
