"""Issue 25 on the real engine: the line for busy GPUs, from the REST API a user's form posts.

Two stand-in GPUs (the engine's `nvidia` runtime points at runc, as scripts/test.sh starts
it): the containers run with their devices but see no GPU.
"""

from __future__ import annotations

import time

import pytest
import requests

from spawner.gpu.line_store import LineStore
from tests.hubtools import container_of

pytestmark = [pytest.mark.docker, pytest.mark.hub]

LINE_HUB = """
c.CUDADockerSpawner.gpu_inventory = [
    {"id": "0", "name": "Stand-in H100"}, {"id": "1", "name": "Stand-in H100"},
]
c.CUDADockerSpawner.profiles = [
    {"slug": "cpu", "display_name": "CPU only", "default": True},
    {"slug": "gpu", "display_name": "One GPU", "gpus": 1},
    {"slug": "pair", "display_name": "Two GPUs", "gpus": 2},
]
c.CUDADockerSpawner.gpu_quota_per_group = {"capped": 1}
c.CUDADockerSpawner.gpu_request_style = "runtime"
c.Spawner.poll_interval = 1
"""
USERS = ["lineann", "linebob", "linecat", "linedan", "linebig", "lineeve", "linecap"]


def server(hub, user: str) -> dict:
    return hub.api("GET", f"users/{user}").json()["servers"].get("", {})


def places(hub) -> dict[str, int]:
    line = LineStore(hub.data_dir / "gpu-line.sqlite").load()
    return {w.user: line.position(w.user) for w in line.waiters}


@pytest.mark.parametrize(
    "secure",
    [True, False],
    ids=["default-deployment", "no-internal-tls"],  # waits in create_certs / in start
)
def test_busy_gpus_give_a_place_in_line_and_a_freed_gpu_starts_the_first_by_itself(
    hub_factory, docker_client, secure
):
    hub = hub_factory(LINE_HUB, secure=secure)
    hub.api("POST", "users", json={"usernames": USERS})
    hub.api("POST", "groups/capped", json={"users": ["linecap"]})

    def start(user: str, profile: str, wait: bool = True) -> requests.Response:
        return hub.api("POST", f"users/{user}/server", json={"profile": profile, "wait": wait})

    for user in ("lineann", "linebob"):
        assert start(user, "gpu", wait=False).status_code in (201, 202)
        hub.wait_ready(user)

    # Both GPUs are held: users 3 and 4 wait at places 1 and 2, their starts pending.
    assert start("linecat", "gpu").status_code == 202
    assert start("linedan", "gpu").status_code == 202
    deadline = time.monotonic() + 20
    while places(hub) != {"linecat": 1, "linedan": 2} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert places(hub) == {"linecat": 1, "linedan": 2}
    said = hub.progress_until("linedan", "number 2 in line")
    assert "Waiting for 1 GPU: you are number 2 in line; 0 of 2 GPUs free, 2 held." in said
    assert said.endswith(
        "You may close this page and keep your place; Stop Server leaves the line."
    )
    assert server(hub, "linecat")["pending"] == "spawn"

    # A start that did not ask to wait does not go ahead of them.
    refused = start("lineeve", "gpu", wait=False)
    assert refused.status_code == 409
    assert refused.json()["message"].startswith("2 users are waiting in line for GPUs")
    # The quota still applies to a user who would wait: refused at once, not queued.
    capped = start("linecap", "pair")
    assert capped.status_code == 409 and "your limit is 1" in capped.json()["message"]
    assert "linecap" not in places(hub)

    # User 1 stops: user 3's server starts with no request from user 3; user 4 moves up.
    assert hub.api("DELETE", "users/lineann/server").status_code in (202, 204)
    hub.wait_ready("linecat", timeout=60)
    assert places(hub) == {"linedan": 1}
    assert "number 1 in line" in hub.progress_until("linedan", "number 1 in line")
    env = dict(
        e.split("=", 1) for e in container_of(docker_client, "linecat").attrs["Config"]["Env"]
    )
    assert env["NVIDIA_VISIBLE_DEVICES"] in ("0", "1")

    # Leaving the line is stopping the pending start: the place goes, nothing is left.
    assert hub.api("DELETE", "users/linedan/server").status_code in (202, 204)
    deadline = time.monotonic() + 20
    while (places(hub) or server(hub, "linedan")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert places(hub) == {} and server(hub, "linedan") == {}
    if not secure:
        return  # the rest does not depend on where the start waits

    # Two GPUs wait until two are free together, and nobody behind jumps ahead meanwhile.
    assert start("linebig", "pair").status_code == 202
    # (201: JupyterHub answers for the spawner of lineeve's refused start above.)
    assert start("lineeve", "gpu").status_code in (201, 202)
    hub.progress_until("lineeve", "number 2 in line")
    assert hub.api("DELETE", "users/linebob/server").status_code in (202, 204)
    hub.progress_until("linebig", "1 of 2 GPUs free")
    time.sleep(3)  # a look or three at the free GPU: lineeve must not take it
    assert server(hub, "lineeve")["pending"] == "spawn" and places(hub)["lineeve"] == 2
    assert hub.api("DELETE", "users/linecat/server").status_code in (202, 204)
    hub.wait_ready("linebig", timeout=60)
    assert places(hub) == {"lineeve": 1}
    # An admin removes lineeve's place (the GPU admin page's Remove does this to the file):
    # the waiting start ends, and the user's page says why.
    assert LineStore(hub.data_dir / "gpu-line.sqlite").leave("lineeve")
    said = hub.progress_until("lineeve", "removed")
    assert "Your place in line for a GPU was removed; start again to wait." in said, said
    hub.wait_stopped("lineeve")
    assert hub.api("DELETE", "users/linebig/server").status_code in (202, 204)
    deadline = time.monotonic() + 20
    while places(hub) and time.monotonic() < deadline:
        time.sleep(0.5)

    # The hub's metrics count the starts from the line, and the line is empty again.
    metrics = hub.api("GET", "../metrics").text
    assert "cudaspawner_gpu_line_starts_total 2.0" in metrics
    assert 'cudaspawner_gpu_line_length{pool="host"} 0.0' in metrics
    assert "cudaspawner_gpu_line_wait_seconds_count 2.0" in metrics
    log = hub.log()
    assert "linecat joined the GPU line" in log and "linecat started from the GPU line" in log
    assert "linedan left the GPU line" in log


ONE_GPU = """
c.CUDADockerSpawner.gpu_inventory = [{"id": "0", "name": "Stand-in H100"}]
c.CUDADockerSpawner.profiles = [
    {"slug": "cpu", "display_name": "CPU only", "default": True},
    {"slug": "gpu", "display_name": "One GPU", "gpus": 1},
]
c.CUDADockerSpawner.gpu_request_style = "runtime"
c.GpuReclaim.interval = 1
c.Spawner.poll_interval = 1
"""


def test_a_hub_restart_keeps_the_line_and_the_place_is_taken_up_again(hub_factory):
    hub = hub_factory(ONE_GPU)
    hub.api("POST", "users", json={"usernames": ["rsholder", "rswaiter"]})
    assert hub.api("POST", "users/rsholder/server", json={"profile": "gpu"}).status_code in (
        201,
        202,
    )
    hub.wait_ready("rsholder")
    options = {"profile": "gpu", "wait": True}
    assert hub.api("POST", "users/rswaiter/server", json=options).status_code == 202
    hub.progress_until("rswaiter", "number 1 in line")
    joined = LineStore(hub.data_dir / "gpu-line.sqlite").load().place_of("rswaiter").joined

    # The hub restarts (an upgrade): the waiting start ends with it, the place does not.
    hub.stop()
    assert places(hub) == {"rswaiter": 1}
    hub.start()
    # The operations service starts the lost wait again, with its options and first time.
    deadline = time.monotonic() + 60
    while server(hub, "rswaiter").get("pending") != "spawn" and time.monotonic() < deadline:
        time.sleep(1)
    assert server(hub, "rswaiter").get("pending") == "spawn"
    assert "number 1 in line" in hub.progress_until("rswaiter", "number 1 in line")
    kept = LineStore(hub.data_dir / "gpu-line.sqlite").load().place_of("rswaiter")
    assert kept.joined == joined and kept.options == options
    assert "Starting rswaiter's wait for a GPU again (the hub restarted)" in hub.log()

    # The GPU frees: the restarted wait gets it.
    assert hub.api("DELETE", "users/rsholder/server").status_code in (202, 204)
    hub.wait_ready("rswaiter", timeout=60)
    assert places(hub) == {}
    assert hub.api("DELETE", "users/rswaiter/server").status_code in (202, 204)
