"""CUDASwarmSpawner through a real hub on a real swarm (own engines, no mocks).

The swarm runs on engines these tests start (tests/swarm/swarmnode.py), never on the shared
test engine. The single-user image's simulated GPU backend describes the node's GPUs and
NVIDIA_VISIBLE_DEVICES (set in the task from Swarm's assignment) narrows it, so each user's
GPU panel (api/gpu/v1/status, through the hub) shows exactly what Swarm gave them.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from spawner.admin.gpus_cli import main as cli_main
from spawner.gpu.cluster import holdings, nodes_from_api
from spawner.gpu.labels import USER_LABEL
from tests.hubtools import TEST_PREFIX
from tests.swarm.conftest import NETWORK, ONE_NODE_GPUS, simulated_description

pytestmark = [pytest.mark.docker, pytest.mark.hub]


def swarm_hub(hub_factory, node, tmp_path, extra: str = "", gpus=ONE_NODE_GPUS, name="A100"):
    sim = tmp_path / "simulated-gpus.json"
    sim.write_text(json.dumps(simulated_description(gpus, name)))
    sim.chmod(0o644)
    config = f"""
c.JupyterHub.spawner_class = "spawner.swarm_edge.spawner.CUDASwarmSpawner"
c.JupyterHub.hub_connect_ip = {node.host_ip!r}
c.CUDASwarmSpawner.network_name = {NETWORK!r}
c.CUDASwarmSpawner.pending_timeout = 15
c.CUDASwarmSpawner.profiles = [
    {{"slug": "cpu", "display_name": "CPU only", "default": True}},
    {{"slug": "gpu", "display_name": "One GPU", "gpus": 1,
      "environment": {{"CUDASPAWNER_GPU_BACKEND": "simulated",
                       "CUDASPAWNER_SIMULATED_GPUS": "/etc/cudaspawner-sim.json"}},
      "volumes": {{{str(sim)!r}: {{"bind": "/etc/cudaspawner-sim.json", "mode": "ro"}}}}}},
]
{extra}
"""
    env = {
        "DOCKER_HOST": node.url,
        "CUDASPAWNER_HUB_IP": node.host_ip,  # the tasks reach the hub over the veth
        "CUDASPAWNER_SSH": "0",
    }
    return hub_factory(config, env=env)


def user_token(hub, user: str) -> str:
    r = hub.api("POST", f"users/{user}/tokens", json={"note": "swarm test"})
    assert r.status_code in (200, 201), r.text
    return r.json()["token"]


def panel_gpus(hub, user: str) -> list[str]:
    """The GPUs the user's GPU panel lists, asked through the hub like the browser does."""
    r = requests.get(
        hub.server_url(user, "api/gpu/v1/status?history=0"),
        headers={"Authorization": f"token {user_token(hub, user)}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return sorted(g["uuid"] for g in r.json()["gpus"])


def cluster_table(node) -> dict[str, str]:
    """GPU -> user, from the cluster itself (what cudaspawner-gpus shows)."""
    api = node.client().api
    rows = holdings(nodes_from_api(api.nodes()), api.tasks(), api.services())
    return {r.gpu: r.user for r in rows}


def servers_left(node) -> list[str]:
    """The hub's services still in the swarm (the network's warm-up service is not one)."""
    api = node.client().api
    return [s["Spec"]["Name"] for s in api.services(filters={"label": USER_LABEL})]


def test_one_node_four_gpus_distinct_fifth_refused_stop_frees_restart_keeps(
    hub_factory, one_node_swarm, tmp_path, monkeypatch, capsys
):
    node = one_node_swarm
    hub = swarm_hub(hub_factory, node, tmp_path)
    users = ["sw1ann", "sw1ben", "sw1cat", "sw1dan"]
    hub.api("POST", "users", json={"usernames": [*users, "sw1eve", "sw1fay"]})

    def spawn(user):
        return hub.api("POST", f"users/{user}/server", json={"profile": "gpu"})

    with ThreadPoolExecutor(4) as pool:
        responses = dict(zip(users, pool.map(spawn, users), strict=True))
    assert all(r.status_code in (201, 202) for r in responses.values()), {
        u: r.text for u, r in responses.items()
    }
    for user in users:
        hub.wait_ready(user, timeout=120)

    table = cluster_table(node)
    assert sorted(table) == sorted(ONE_NODE_GPUS) and sorted(table.values()) == sorted(users)
    seen = {user: panel_gpus(hub, user) for user in users}
    assert all(len(g) == 1 for g in seen.values()), seen
    assert {g[0]: u for u, g in seen.items()} == table  # each panel shows Swarm's assignment

    r = spawn("sw1eve")
    assert r.status_code == 409, r.text
    assert "no node has that many free right now" in r.json()["message"]
    # Asked to wait, sw1eve takes a place in the line for busy GPUs instead (issue 25).
    r = hub.api("POST", "users/sw1eve/server", json={"profile": "gpu", "wait": True})
    assert r.status_code in (201, 202), r.text
    said = hub.progress_until("sw1eve", "number 1 in line")
    assert "Waiting for 1 GPU: you are number 1 in line; 0 of 4 GPUs free, 4 held." in said
    assert hub.api("GET", "users/sw1eve").json()["servers"][""]["pending"] == "spawn"

    # A task ends (sw1ann stops): sw1eve starts by itself, on the freed GPU.
    hub.api("DELETE", "users/sw1ann/server")
    hub.wait_stopped("sw1ann")
    freed = seen["sw1ann"][0]
    hub.wait_ready("sw1eve", timeout=120)
    assert panel_gpus(hub, "sw1eve") == [freed]
    assert "sw1eve started from the GPU line" in hub.log()

    # A restarted hub finds the servers and still refuses a GPU that is held.
    hub.stop()
    hub.start()
    for user in ["sw1ben", "sw1cat", "sw1dan", "sw1eve"]:
        hub.wait_ready(user)
    r = spawn("sw1fay")
    assert r.status_code == 409, r.text
    assert cluster_table(node) == {**table, freed: "sw1eve"}
    # The admin's table: cudaspawner-gpus swarm, against the manager.
    monkeypatch.setenv("DOCKER_HOST", node.url)
    assert cli_main(["swarm", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {g["gpu"]: g["user"] for g in shown["gpus"]} == {**table, freed: "sw1eve"}
    assert {g["node"] for g in shown["gpus"]} == {node.name} and all(
        g["since"] for g in shown["gpus"]
    )
    assert shown["nodes"] == [{"node": node.name, "gpus": list(ONE_NODE_GPUS), "free": []}]
    # The CPU profile still starts while every GPU is held.
    assert hub.api("POST", "users/sw1fay/server", json={"profile": "cpu"}).status_code in (201, 202)
    hub.wait_ready("sw1fay", timeout=120)
    assert panel_gpus(hub, "sw1fay") == []
    for user in ["sw1ben", "sw1cat", "sw1dan", "sw1eve", "sw1fay"]:
        hub.api("DELETE", f"users/{user}/server")
    for user in ["sw1ben", "sw1cat", "sw1dan", "sw1eve", "sw1fay"]:
        hub.wait_stopped(user)
    assert servers_left(node) == []


def test_two_users_racing_for_all_gpus_one_runs_the_other_is_told_why(
    hub_factory, one_node_swarm, tmp_path
):
    """Both may pass the hub's check before either service exists; Swarm then gives the GPUs
    to one, and the other's task stays pending until `pending_timeout`: its service is
    removed and the user reads Swarm's reason. If the hub saw the first service in time,
    the second is refused at once instead. Either way: one server, one sentence, nothing left."""
    node = one_node_swarm
    extra = (
        'c.CUDASwarmSpawner.profiles.append({"slug": "all", "display_name": "All", "gpus": 4})\n'
        "c.CUDASwarmSpawner.pending_timeout = 8\n"
    )
    hub = swarm_hub(hub_factory, node, tmp_path, extra)
    users = ["sw1gus", "sw1hal"]
    hub.api("POST", "users", json={"usernames": users})

    def spawn(user):
        r = hub.api("POST", f"users/{user}/server", json={"profile": "all"})
        if r.status_code == 202:  # slow: the outcome comes with the server's model
            try:
                hub.wait_ready(user, timeout=120)
                return "ready", ""
            except AssertionError:
                return "failed", hub.log()
        return ("ready", "") if r.status_code == 201 else ("failed", r.text)

    with ThreadPoolExecutor(2) as pool:
        outcomes = dict(zip(users, pool.map(spawn, users), strict=True))
    ready = [u for u, (state, _) in outcomes.items() if state == "ready"]
    assert len(ready) == 1, outcomes
    loser = next(u for u in users if u not in ready)
    text = outcomes[loser][1]
    assert (
        "no node has that many free right now" in text
        or "insufficient resources" in text  # Swarm's own reason, after the timeout
    ), text[-3000:]
    print("race outcome:", "pending then removed" if "insufficient" in text else "refused at once")
    assert sorted(cluster_table(node).values()) == [ready[0]] * 4
    assert servers_left(node) == [f"{TEST_PREFIX}-{ready[0]}"]
    hub.api("DELETE", f"users/{ready[0]}/server")
    hub.wait_stopped(ready[0])
    assert servers_left(node) == []
