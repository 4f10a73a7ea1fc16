"""Issue 16 on the real hub and engine: idle GPUs come back, busy and exempt ones stay,
"keep" holds a server until its next idle period, and /hub/metrics counts it all.

The user image runs the simulated GPU backend, chosen through each profile's environment:
the "busy" profile's GPUs read 90 % utilisation, the "idle" profile's 0 %. The engine's
runtime named `nvidia` is a stand-in for runc (scripts/test.sh), so GPU containers start.
Thresholds are seconds, so the whole story takes well under a minute.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.hubtools import container_of

pytestmark = [pytest.mark.docker, pytest.mark.hub]

UUIDS = [f"GPU-00000000-0000-4000-8000-00000000000{i}" for i in range(4)]
IDLE_AFTER, WARN_FOR = 20, 6


def _description(utilisation: int) -> dict:
    return {
        "driver_version": "550.54.15",
        "cuda_driver_version": "12.4",
        "gpus": [
            {
                "index": i,
                "uuid": uuid,
                "name": "Simulated H100",
                "utilization_gpu": utilisation,
                "memory_used": 2**30,
                "memory_total": 80 * 2**30,
            }
            for i, uuid in enumerate(UUIDS)
        ],
    }


def _config(sim_dir) -> str:
    def profile(slug: str) -> dict:
        return {
            "slug": slug,
            "display_name": slug,
            "gpus": 1,
            "environment": {
                "CUDASPAWNER_GPU_BACKEND": "simulated",
                "CUDASPAWNER_SIMULATED_GPUS": f"/sim/{slug}.json",
            },
            "volumes": {str(sim_dir): "/sim"},
        }

    policy = {"idle_after": IDLE_AFTER, "warn_for": WARN_FOR, "threshold": 10}
    inventory = [{"id": u, "name": "Simulated H100"} for u in UUIDS]
    profiles = [{"slug": "cpu", "display_name": "CPU", "default": True}]
    profiles += [profile("busy"), profile("idle")]
    return f"""
c.CUDADockerSpawner.gpu_inventory = {inventory!r}
c.CUDADockerSpawner.profiles = {profiles!r}
c.CUDADockerSpawner.gpu_request_style = "runtime"
c.Spawner.poll_interval = 1
c.GpuReclaim.interval = 1
c.GpuReclaim.policies = {{"*": {policy!r}}}
c.GpuReclaim.exempt_users = ["opsexempt"]
"""


def simulated_profiles(tmp_path) -> str:
    """A hub's config whose "busy" profile's GPUs read 90 % and "idle" profile's 0 %."""
    sim = tmp_path / "sim"
    sim.mkdir()
    sim.chmod(0o755)
    for slug, utilisation in (("busy", 90), ("idle", 0)):
        (sim / f"{slug}.json").write_text(json.dumps(_description(utilisation)))
        (sim / f"{slug}.json").chmod(0o644)
    return _config(sim)


def _metrics(hub) -> dict[tuple[str, tuple], float]:
    r = requests.get(
        hub.url + "hub/metrics", headers={"Authorization": f"token {hub.admin_token}"}, timeout=30
    )
    assert r.status_code == 200, r.text[:300]
    found = {}
    for family in text_string_to_metric_families(r.text):
        if family.name.startswith("cudaspawner"):
            for s in family.samples:
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def _wait(what: str, check, timeout: float, hub) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{hub.log()[-4000:]}")


def test_idle_gpu_is_warned_then_stopped_busy_exempt_and_kept_servers_stay(
    hub_factory, docker_client, tmp_path
):
    hub = hub_factory(simulated_profiles(tmp_path))
    # Names of their own: other suites' hubs share this engine, and container names follow
    # user names.
    profiles = {"opsbusy": "busy", "opsidle": "idle", "opsexempt": "idle", "opskeeper": "idle"}
    hub.api("POST", "users", json={"usernames": [*profiles, "opslate"]})

    def gpu_api(user: str, method: str, endpoint: str) -> requests.Response:
        return requests.request(
            method,
            hub.server_url(user, f"api/gpu/v1/{endpoint}"),
            headers={"Authorization": f"token {hub.admin_token}"},
            timeout=30,
        )

    def notice(user: str) -> dict:
        r = gpu_api(user, "GET", "status?history=0")
        assert r.status_code == 200, r.text[:300]
        return r.json()["reclaim"]

    with ThreadPoolExecutor(4) as pool:
        spawned = list(
            pool.map(
                lambda u: hub.api("POST", f"users/{u}/server", json={"profile": profiles[u]}),
                profiles,
            )
        )
    assert all(r.status_code in (201, 202) for r in spawned), [r.text for r in spawned]
    for user in profiles:
        hub.wait_ready(user)
    gpu_of = {u: container_of(docker_client, u).labels["org.cudaspawner.gpus"] for u in profiles}
    held = {
        u: _wait(
            f"{u}'s GPU reading",
            lambda u=u: gpu_api(u, "GET", "status?history=0").json()["gpus"],
            30,
            hub,
        )
        for u in profiles
    }
    assert (
        held["opsbusy"][0]["utilization_gpu"] == 90 and held["opsidle"][0]["utilization_gpu"] == 0
    )

    # All four GPUs held: opslate takes a place in the line (issue 25).
    r = hub.api("POST", "users/opslate/server", json={"profile": "busy", "wait": True})
    assert r.status_code == 202, r.text
    hub.progress_until("opslate", "number 1 in line")

    # The idle servers are warned; the status document (what the panel and the status bar
    # read) carries the time left.
    warning = _wait("opskeeper's warning", lambda: notice("opskeeper")["warning"], 30, hub)
    assert 0 < warning["seconds_left"] <= WARN_FOR
    assert "below 10% utilisation" in warning["message"]
    first_stop_at = warning["stop_at"]
    r = gpu_api("opskeeper", "POST", "reclaim/keep")
    assert r.status_code == 200 and r.json()["warning"] is None, r.text[:300]
    idle_warning = _wait("opsidle's warning", lambda: notice("opsidle")["warning"], 30, hub)
    # The waiting user's estimate now names the reclaim that frees a GPU, at its time.
    at = time.strftime("%H:%M UTC", time.gmtime(idle_warning["stop_at"]))
    said = hub.progress_until("opslate", f"reclaimed at {at}")
    assert "number 1 in line; 0 of 4 GPUs free, 4 held. About " in said, said

    # Past opskeeper's first deadline it still runs: "keep" started a new idle period.
    _wait("opskeeper's first deadline", lambda: time.time() > first_stop_at + 2, WARN_FOR + 5, hub)
    model = hub.api("GET", "users/opskeeper").json()
    assert model["servers"][""]["ready"], model

    # The idle one is stopped and its GPU is free again (stops are slow on a busy machine).
    hub.wait_stopped("opsidle", timeout=WARN_FOR + 40)
    _wait("the service's log line", lambda: "Idle GPUs: stopped opsidle" in hub.log(), 20, hub)

    # opskeeper's new idle period ends in a new warning, with a later deadline.
    again = _wait("opskeeper's second warning", lambda: notice("opskeeper")["warning"], 40, hub)
    assert again["stop_at"] > first_stop_at + IDLE_AFTER - 2
    assert gpu_api("opskeeper", "POST", "reclaim/keep").status_code == 200  # and keeps again

    # Busy and exempt servers are never warned and keep running.
    for user in ("opsbusy", "opsexempt"):
        assert notice(user)["warning"] is None
        assert hub.api("GET", f"users/{user}").json()["servers"][""]["ready"]

    # The freed GPU goes to the user waiting in line, with no request from them.
    hub.wait_ready("opslate")
    assert (
        container_of(docker_client, "opslate").labels["org.cudaspawner.gpus"] == gpu_of["opsidle"]
    )

    # The hub's own /metrics: 4 GPUs, all held again (busy and opslate on "busy"; exempt and
    # keeper on "idle", both idle), one reclaimed from the "idle" profile.
    def settled():
        m = _metrics(hub)
        held = {p: m.get(("cudaspawner_gpus_held", (("profile", p),))) for p in ("busy", "idle")}
        return m if held == {"busy": 2, "idle": 2} else None

    m = _wait("metrics with opslate's server", settled, 10, hub)
    assert m[("cudaspawner_gpus_total", ())] == 4
    assert m[("cudaspawner_gpus_idle", (("profile", "idle"),))] == 2
    assert ("cudaspawner_gpus_idle", (("profile", "busy"),)) not in m
    assert m[("cudaspawner_gpus_reclaimed_total", (("profile", "idle"),))] == 1
    assert m[("cudaspawner_gpus_held_by_group", (("group", ""),))] == 4

    # All four held again: one more GPU spawn is refused, and the hub counts why; each
    # spawn's duration landed in its profile's histogram.
    hub.api("POST", "users", json={"usernames": ["opsfifth"]})
    r = hub.api("POST", "users/opsfifth/server", json={"profile": "idle"})
    assert r.status_code == 409, r.text
    m = _metrics(hub)
    assert m[("cudaspawner_spawn_refusals_total", (("reason", "no_free_gpu"),))] == 1
    assert m[("cudaspawner_spawn_duration_seconds_count", (("profile", "busy"),))] == 2
    assert m[("cudaspawner_spawn_duration_seconds_count", (("profile", "idle"),))] == 3
