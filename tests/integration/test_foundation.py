"""Issue 2: a real hub spawns a hardened container on the real engine, and fails clearly."""

from __future__ import annotations

import pytest

from tests.hubtools import TEST_PREFIX, Browser, container_of, hub_containers

pytestmark = [pytest.mark.docker, pytest.mark.hub]


def _exec(container, cmd: str) -> str:
    code, out = container.exec_run(["sh", "-c", cmd])
    assert code == 0, out
    return out.decode().strip()


def test_user_logs_in_spawns_reaches_lab_and_runs_confined(hub_factory, docker_client):
    hub = hub_factory()
    hub_factory.volumes.append(f"{TEST_PREFIX}-home-alice")
    browser = Browser(hub)

    login = browser.login("alice", hub.user_password)
    assert login.status_code == 302, login.text[:300]
    assert browser.session.cookies.get("jupyterhub-session-id")

    r = browser.spawn("alice")
    assert r.status_code in (201, 202), r.text
    hub.wait_ready("alice")

    lab = browser.get("user/alice/lab")
    assert lab.status_code == 200
    assert "JupyterLab" in lab.text
    status = browser.get("user/alice/api/status")
    assert status.status_code == 200 and "started" in status.json()

    c = container_of(docker_client, "alice")
    # Confined: not root, no capabilities at all, no privilege escalation.
    assert _exec(c, "id -u") != "0"
    proc_status = _exec(c, "cat /proc/self/status")
    fields = dict(line.split(":\t", 1) for line in proc_status.splitlines() if ":\t" in line)
    assert int(fields["CapEff"].strip(), 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    host = c.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] and host["PidsLimit"] > 0
    assert host["ShmSize"] >= 1024**3  # PyTorch DataLoader needs far more than 64 MB
    assert host["AutoRemove"] is True
    mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
    assert mounts["/home/jovyan"]["Name"] == f"{TEST_PREFIX}-home-alice"

    # The home volume outlives the container.
    _exec(c, "echo 'kept' > /home/jovyan/notes.txt")
    assert hub.api("DELETE", "users/alice/server").status_code in (202, 204)
    hub.wait_stopped("alice")
    assert browser.spawn("alice").status_code in (201, 202)
    hub.wait_ready("alice")
    c2 = container_of(docker_client, "alice")
    assert c2.id != c.id
    assert _exec(c2, "cat /home/jovyan/notes.txt") == "kept"
    assert hub.api("DELETE", "users/alice/server").status_code in (202, 204)
    hub.wait_stopped("alice")


def test_missing_image_is_a_clear_message_and_leaves_nothing(hub_factory, docker_client):
    hub = hub_factory('c.DockerSpawner.image = "cudaspawner/no-such-image:1"')
    browser = Browser(hub)
    assert browser.login("bob", hub.user_password).status_code == 302

    r = browser.spawn("bob")
    assert 400 <= r.status_code < 600
    message = r.json()["message"]
    assert "cudaspawner/no-such-image:1" in message and "not available on this host" in message
    assert "Internal Server Error" not in message
    assert hub_containers(docker_client, hub) == []
    assert not docker_client.volumes.list(filters={"name": f"{TEST_PREFIX}-home-bob"})


def test_unreachable_engine_is_a_clear_message_and_next_start_works(
    hub_factory, docker_client, tmp_path
):
    # The hub talks to an engine socket where nothing listens; its own network address is
    # given so that the config file does not need the engine either.
    gateway = docker_client.networks.get("cudaspawner-test").attrs["IPAM"]["Config"][0]["Gateway"]
    env = {"DOCKER_HOST": f"unix://{tmp_path}/nowhere.sock", "CUDASPAWNER_HUB_IP": gateway}
    hub = hub_factory(env=env, name="down")
    hub_factory.volumes.append("cudaspawner-home-carol")
    browser = Browser(hub)
    assert browser.login("carol", hub.user_password).status_code == 302

    r = browser.spawn("carol")
    assert r.status_code == 503, r.text
    assert "Docker engine" in r.json()["message"]
    assert "Traceback" not in r.text

    # The same hub data, the engine back: the next start is not tripped by leftovers.
    hub.stop()
    # The engine back, the hub starts as deployed: it finds its network and opens its port
    # in the host firewall for containers (a given CUDASPAWNER_HUB_IP skips both).
    hub.env.pop("DOCKER_HOST")
    hub.env.pop("CUDASPAWNER_HUB_IP")
    hub.start()
    assert browser.login("carol", hub.user_password).status_code == 302
    assert browser.spawn("carol").status_code in (201, 202)
    hub.wait_ready("carol")
    assert hub.api("DELETE", "users/carol/server").status_code in (202, 204)
    hub.wait_stopped("carol")
