"""Issue 14 on the real engine: one Docker engine, several owners.

A hub stops, removes or reuses only containers and volumes carrying its own identity; a
GPU held by a container it did not start is never handed out. This engine has no GPU: the
runtime named `nvidia` is a stand-in for runc (scripts/test.sh registers it), so a
container "holds" a GPU through NVIDIA_VISIBLE_DEVICES under that runtime. A container
with a GPU device request cannot start here without the NVIDIA toolkit (and a created one
holds nothing); that form is proven in tests/unit/test_gpu_claims.py.
"""

from __future__ import annotations

import json
import secrets
import time

import docker
import pytest

from spawner.admin.gpus_cli import main as cli_main
from tests.hubtools import (
    HUB_LABEL,
    TEST_PREFIX,
    container_of,
    dump_docker_state,
    make_hub,
    remove_hub_leftovers,
)

pytestmark = [pytest.mark.docker]

OUTSIDE_LABEL = "org.cudaspawner.test-outside"  # what this module starts by hand
BASE = "cudaspawner/debian:bookworm"

GPU_HUB = """
c.CUDADockerSpawner.gpu_inventory = ["0", "1"]
c.CUDADockerSpawner.profiles = [
    {"slug": "gpu", "display_name": "GPU", "gpus": 1, "default": True},
]
c.CUDADockerSpawner.gpu_request_style = "runtime"
"""


@pytest.fixture
def outside(docker_client):
    """Start containers "by hand" (not through a hub), removed after the test."""
    made = []
    tag = secrets.token_hex(4)

    def run(name: str, **kw):
        c = docker_client.containers.run(
            BASE,
            ["sleep", "infinity"],
            name=f"{name}-{tag}" if not kw.pop("exact", False) else name,
            detach=True,
            init=True,
            labels={OUTSIDE_LABEL: tag},
            **kw,
        )
        made.append(c)
        return c

    yield run
    for c in made:
        try:
            c.remove(force=True)
        except docker.errors.NotFound:
            pass


def _refusal(hub, user: str) -> tuple[int, str]:
    """(status, message) of a spawn that fails: answered at once, or after the hub's
    10 s "slow to start" (202), in which case the progress stream carries the message."""
    r = hub.api("POST", f"users/{user}/server")
    if r.status_code != 202:
        return r.status_code, r.json().get("message", r.text)
    with hub.api("GET", f"users/{user}/server/progress", stream=True) as events:
        for line in events.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("failed"):
                    return 409 if "HTTP 409" in event.get("message", "") else 500, event["message"]
    raise AssertionError(f"{user}'s spawn did not fail:\n{hub.log()[-3000:]}")


def _status(c) -> str:
    c.reload()
    return c.status


def _gpus_of(client, user: str) -> str:
    return container_of(client, user).labels["org.cudaspawner.gpus"]


def test_a_container_named_like_a_users_server_survives_that_users_spawn_and_stop(
    hub_factory, docker_client, outside
):
    user = f"g14own{secrets.token_hex(2)}"
    squatter = outside(f"{TEST_PREFIX}-{user}", exact=True)
    hub = hub_factory()
    hub.api("POST", f"users/{user}")
    status, message = _refusal(hub, user)
    assert status == 409, message
    assert f"{TEST_PREFIX}-{user}" in message and "left untouched" in message
    assert "docker rm -f" in hub.log()  # the admin's way out, in the hub log
    assert hub.api("DELETE", f"users/{user}/server").status_code in (202, 204, 400)
    time.sleep(1)
    assert _status(squatter) == "running"
    assert squatter.labels.get(HUB_LABEL) is None


def test_two_hubs_with_one_user_name_both_keep_their_servers(hub_factory, docker_client):
    user = f"g14two{secrets.token_hex(2)}"
    first = hub_factory()
    second = hub_factory()  # same name prefix and volume template: names collide
    assert first.hub_id != second.hub_id
    for hub in (first, second):
        hub.api("POST", f"users/{user}")
    assert first.api("POST", f"users/{user}/server").status_code in (201, 202)
    first.wait_ready(user)
    mine = container_of(docker_client, user)
    assert mine.labels[HUB_LABEL] == first.hub_id

    status, message = _refusal(second, user)
    assert status == 409 and "does not belong to this hub" in message, message
    second.api("DELETE", f"users/{user}/server")
    assert _status(mine) == "running"

    # Named apart (as two deployments on one engine should be), both run.
    third = hub_factory(
        f'c.DockerSpawner.prefix = "{TEST_PREFIX}b"\n'
        f'c.CUDADockerSpawner.home_volume_name = "{TEST_PREFIX}b-home-{{username}}"\n'
    )
    third.api("POST", f"users/{user}")
    assert third.api("POST", f"users/{user}/server").status_code in (201, 202)
    third.wait_ready(user)
    theirs = docker_client.containers.get(f"{TEST_PREFIX}b-{user}")
    assert theirs.labels[HUB_LABEL] == third.hub_id
    assert _status(mine) == "running"
    third.api("DELETE", f"users/{user}/server")
    third.wait_stopped(user)
    assert _status(mine) == "running"
    volume = docker_client.volumes.get(f"{TEST_PREFIX}-home-{user}")
    assert volume.attrs["Labels"][HUB_LABEL] == first.hub_id


def test_a_test_hub_beside_a_live_deployment_leaves_its_user_server_running(
    tmp_path, docker_client
):
    """What `test.sh` does to a deployment serving a user of the same name: nothing."""
    user = f"g14dep{secrets.token_hex(2)}"
    deployed = make_hub(tmp_path / "deployed", as_deployed=True)
    tester = make_hub(tmp_path / "tester")
    try:
        deployed.start()
        deployed.api("POST", f"users/{user}")
        assert deployed.api("POST", f"users/{user}/server").status_code in (201, 202)
        deployed.wait_ready(user)
        # Generated at the first spawn, kept beside the database.
        deployed.hub_id = (deployed.data_dir / "hub-id").read_text().strip()
        served = docker_client.containers.get(f"jupyter-{user}")
        assert served.labels[HUB_LABEL] == deployed.hub_id

        tester.start()
        tester.api("POST", f"users/{user}")
        assert tester.api("POST", f"users/{user}/server").status_code in (201, 202)
        tester.wait_ready(user)
        tester.api("DELETE", f"users/{user}/server")
        tester.wait_stopped(user)
        tester.stop()
        # The suite's clean-up, even when told the deployment's volume name.
        remove_hub_leftovers(docker_client, tester, [f"cudaspawner-home-{user}"])

        assert _status(served) == "running"
        docker_client.volumes.get(f"cudaspawner-home-{user}")  # still there
        assert deployed.api("GET", f"users/{user}").json()["servers"][""]["ready"]
    except Exception:
        print(dump_docker_state(docker_client, deployed))
        raise
    finally:
        for hub in (tester, deployed):
            hub.stop()
        remove_hub_leftovers(docker_client, deployed, [f"cudaspawner-home-{user}"])


def test_a_gpu_held_outside_the_hub_is_never_assigned_and_freed_when_that_container_stops(
    hub_factory, docker_client, outside, capsys
):
    runtimes = docker_client.info().get("Runtimes") or {}
    assert "nvidia" in runtimes, "the engine lacks the stand-in runtime nvidia (scripts/test.sh)"
    job = outside("g14-training-job", runtime="nvidia", environment={"NVIDIA_VISIBLE_DEVICES": "0"})
    hub = hub_factory(GPU_HUB)
    users = [f"g14gpu{secrets.token_hex(2)}" for _ in range(2)]
    for u in users:
        hub.api("POST", f"users/{u}")

    assert hub.api("POST", f"users/{users[0]}/server").status_code in (201, 202)
    hub.wait_ready(users[0])
    assert _gpus_of(docker_client, users[0]) == "1"
    status, message = _refusal(hub, users[1])
    assert status == 409 and "GPU" in message, message
    assert f"GPU 0 is held outside the hub by container {job.name}" in hub.log()
    # The admin's table says who holds it.
    assert cli_main(["--json", "--inventory", '["0", "1"]']) == 0
    rows = json.loads(capsys.readouterr().out)["gpus"]
    assert {"gpu": "0", "user": "outside the hub", "container": job.name} in [
        {k: r[k] for k in ("gpu", "user", "container")} for r in rows
    ]

    job.stop(timeout=1)
    assert hub.api("POST", f"users/{users[1]}/server").status_code in (201, 202)
    hub.wait_ready(users[1])
    assert _gpus_of(docker_client, users[1]) == "0"


def test_two_hubs_on_one_network_planning_the_same_tls_address_both_start(
    hub_factory, docker_client
):
    """Internal TLS: the second hub's plan collides with the first hub's running server;
    it plans again (with a new certificate) instead of answering 500."""
    env = {"CUDASPAWNER_INTERNAL_SSL": "1"}
    user_a, user_b = (f"g14tls{secrets.token_hex(2)}" for _ in range(2))
    first = hub_factory(env=env)
    first.api("POST", f"users/{user_a}")
    assert first.api("POST", f"users/{user_a}/server").status_code in (201, 202)
    first.wait_ready(user_a)
    taken = next(
        iter(container_of(docker_client, user_a).attrs["NetworkSettings"]["Networks"].values())
    )["IPAddress"]
    # The second hub planned before the first hub's container existed: the same address.
    forced = f"""
import spawner.host.internal_ssl as _ssl
_pick, _forced = _ssl.pick_free_address, [{taken!r}]
def _first_taken(subnet, gateway, used, start=0):
    return _forced.pop() if _forced else _pick(subnet, gateway, used, start)
_ssl.pick_free_address = _first_taken
"""
    second = hub_factory(forced, env=env)
    second.api("POST", f"users/{user_b}")
    assert second.api("POST", f"users/{user_b}/server").status_code in (201, 202)
    second.wait_ready(user_b, timeout=120)
    assert f"Address {taken} on" in second.log()
    theirs = container_of(docker_client, user_b)
    address = next(iter(theirs.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    assert address and address != taken
    assert _status(container_of(docker_client, user_a)) == "running"


def test_the_reservation_benchmark_runs_and_cleans_up(docker_client):
    """benchmarks/reserve.py, small (its 200-container figures are in docs/gpus.md)."""
    import subprocess
    import sys

    from tests.hubtools import REPO

    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/reserve.py"),
            "--containers",
            "20",
            "--repeat",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "never assigned" in done.stdout
    assert not docker_client.containers.list(all=True, filters={"label": "org.cudaspawner.bench"})
