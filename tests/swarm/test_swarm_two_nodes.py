"""A two-node swarm on one machine: a profile constrained to the worker lands there, and the
user's notebook and GPU panel are reached through the hub (own engines, no mocks)."""

from __future__ import annotations

import re

import pytest
import requests

from spawner.gpu.labels import USER_LABEL
from tests.hubtools import Browser
from tests.swarm.conftest import WORKER_GPUS
from tests.swarm.test_swarm_hub import (
    cluster_table,
    panel_gpus,
    servers_left,
    swarm_hub,
    user_token,
)

pytestmark = [pytest.mark.docker, pytest.mark.hub]


def test_profile_constrained_to_the_worker_lands_there_and_shows_its_gpus(
    hub_factory, two_node_swarm, tmp_path
):
    manager, worker = two_node_swarm
    extra = 'c.CUDASwarmSpawner.profile_constraints = {"gpu": ["node.labels.gpu == h100"]}'
    hub = swarm_hub(hub_factory, manager, tmp_path, extra, gpus=WORKER_GPUS, name="H100")
    hub.api("POST", "users", json={"usernames": ["sw2ann", "sw2ben", "sw2cat"]})
    for user in ("sw2ann", "sw2ben"):
        r = hub.api("POST", f"users/{user}/server", json={"profile": "gpu"})
        assert r.status_code in (201, 202), r.text
    for user in ("sw2ann", "sw2ben"):
        hub.wait_ready(user, timeout=180)

    api = manager.client().api
    tasks = {
        t["Spec"]["ContainerSpec"].get("Labels", {}).get(USER_LABEL): t
        for t in api.tasks(filters={"desired-state": "running"})
    }
    worker_id = next(n["ID"] for n in api.nodes() if n["Description"]["Hostname"] == worker.name)
    assert {tasks[u]["NodeID"] for u in ("sw2ann", "sw2ben")} == {worker_id}

    # Through the hub: the notebook answers, and its panel shows one of the worker's GPUs.
    token = user_token(hub, "sw2ann")
    r = requests.get(
        hub.server_url("sw2ann", "api/status"),
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    seen = panel_gpus(hub, "sw2ann") + panel_gpus(hub, "sw2ben")
    assert sorted(seen) == sorted(WORKER_GPUS)
    assert {g: n for g, n in cluster_table(manager).items()} == {
        g: u for u in ("sw2ann", "sw2ben") for g in panel_gpus(hub, u)
    }

    # The worker's two GPUs are taken: the manager's four free ones do not count for this
    # profile, on the form (its own nodes' figures) nor on a request. With none free, the
    # form offers a place in the line for those nodes' GPUs, ticked (issue 25).
    browser = Browser(hub)
    browser.login("sw2cat", hub.user_password)
    page = browser.get("hub/spawn")
    assert page.status_code == 200, page.text
    shown = " ".join(page.text.split())
    assert "0 of 2 free right now" in shown, page.text[-3000:]
    assert re.search(r'id="cudaspawner-profile-gpu-wait" value="on" checked', shown), shown
    r = hub.api("POST", "users/sw2cat/server", json={"profile": "gpu"})
    assert r.status_code == 409, r.text
    assert "no node has that many free right now" in r.json()["message"]
    for user in ("sw2ann", "sw2ben"):
        hub.api("DELETE", f"users/{user}/server")
    for user in ("sw2ann", "sw2ben"):
        hub.wait_stopped(user)
    assert servers_left(manager) == []
