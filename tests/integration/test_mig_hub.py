"""Issue 27 on a real hub and engine: MIG slices as GPUs, from the user's seat.

The hosts are SIMULATED NVML hosts (tests/gpu_hosts/*.json, read through
`spawner.gpu.simulated_nvml`): there is no GPU here. Where a container must run, the test
engine's runtime named `nvidia` is the stand-in that points at runc (scripts/test.sh starts
dockerd so): the containers start and carry exactly the MIG ids they were given, but see no
GPU. In the engine lane: the free counts shown must not meet another lane's GPU containers.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from tests.hubtools import Browser, container_of, hub_containers
from tests.integration.test_security import admin_password, approve, logged_in, signup

pytestmark = [pytest.mark.docker, pytest.mark.hub]

HOSTS = Path(__file__).resolve().parent.parent / "gpu_hosts"
PROFILES = """
c.CUDADockerSpawner.profiles = [
    {"slug": "cpu", "display_name": "CPU only", "default": True},
    {"slug": "slice", "display_name": "A 1g.10gb slice", "mig": "1g.10gb"},
    {"slug": "two", "display_name": "Two slices", "mig": "1g.10gb", "gpus": 2},
    {"slug": "half", "display_name": "Half an H100", "mig": "3g.40gb"},
    {"slug": "gpu", "display_name": "A whole GPU", "gpus": 1},
]
c.CUDADockerSpawner.gpu_request_style = "runtime"
c.Spawner.poll_interval = 1
"""


def on_host(name: str) -> str:
    return f'c.CUDADockerSpawner.gpu_inventory = "simulated-nvml:{HOSTS / name}.json"\n' + PROFILES


def _env(container) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])


def card(form: str, slug: str) -> str:
    """The text of one profile's card on the spawn form."""
    found = re.search(
        rf'id="cudaspawner-profile-{slug}".*?(?=id="cudaspawner-profile-(?!{slug})|</form>)',
        form,
        re.S,
    )
    assert found, form[-3000:]
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(found.group(0))).split())


def deployment(hub_factory, host: str):
    """The default deployment (HTTPS, native sign-up, internal TLS, its services) on a
    simulated host, and its admin signed in."""
    hub = hub_factory(on_host(host), secure=True)
    admin = Browser(hub)
    assert logged_in(admin.login("admin", admin_password(hub)))
    return hub, admin


def user(hub, admin: Browser, name: str) -> Browser:
    """An ordinary user who signed up, was approved, and signed in."""
    password = f"{name}-long-passphrase"
    signup(hub, name, password)
    approve(admin, name)
    browser = Browser(hub)
    assert logged_in(browser.login(name, password))
    return browser


def test_two_users_get_two_slices_of_one_gpu_and_a_restart_keeps_them(hub_factory, docker_client):
    hub, admin = deployment(hub_factory, "h100-mig")
    ann, bob, cy = (user(hub, admin, n) for n in ("migann", "migbob", "migcy"))
    form = ann.get("hub/spawn/migann").text
    assert "7 of 7 free right now" in card(form, "slice")
    assert "1 MIG 1g.10gb slice" in card(form, "slice")
    assert "This host has no MIG 3g.40gb slices" in card(form, "half")

    for who, name in ((ann, "migann"), (bob, "migbob")):
        r = who.spawn(name, {"profile": "slice"})
        assert r.status_code in (201, 202), r.text
        hub.wait_ready(name)
    given = {n: _env(container_of(docker_client, n))["NVIDIA_VISIBLE_DEVICES"] for n in
             ("migann", "migbob")}  # fmt: skip
    assert all(v.startswith("MIG-h100a-1g10gb-") for v in given.values()), given
    assert len(set(given.values())) == 2
    for n, mig in given.items():
        assert container_of(docker_client, n).labels["org.cudaspawner.gpus"] == mig

    # The GPU they are slices of is not given whole while they hold them; the form says so.
    r = cy.spawn("migcy", {"profile": "gpu"})
    assert r.status_code == 409, r.text
    assert r.json()["message"] == (
        "1 GPU requested, 0 free of 1; pick the CPU profile or try again later."
    )
    form = cy.get("hub/spawn/migcy").text
    assert "0 of 1 free right now" in card(form, "gpu")  # (a place in line is offered)
    assert "5 of 7 free right now" in card(form, "slice")
    # A user cannot name a slice, nor turn a profile into a MIG one: only profiles give them.
    r = cy.spawn("migcy", {"profile": "gpu", "mig": "1g.10gb"})
    assert r.status_code == 400, r.text
    # A slice profile the host does not have, and more slices than a server may hold.
    r = cy.spawn("migcy", {"profile": "half"})
    assert r.status_code == 409 and "this host has no MIG 3g.40gb slices" in r.json()["message"]
    r = cy.spawn("migcy", {"profile": "two"})
    assert r.status_code == 400, r.text
    assert "a server may hold 1 on this hub" in r.json()["message"]

    # A new hub process rebuilds the slice table from the containers' labels.
    hub.stop()
    hub.start()
    cy = Browser(hub)  # a new session on the new hub process
    assert logged_in(cy.login("migcy", "migcy-long-passphrase"))
    r = cy.spawn("migcy", {"profile": "gpu"})
    assert r.status_code == 409 and "0 free of 1" in r.json()["message"], r.text
    r = cy.spawn("migcy", {"profile": "slice"})
    assert r.status_code in (201, 202), r.text
    hub.wait_ready("migcy")
    third = _env(container_of(docker_client, "migcy"))["NVIDIA_VISIBLE_DEVICES"]
    assert third.startswith("MIG-") and third not in given.values()
    assert len(hub_containers(docker_client, hub, all_=False)) == 3
    # The metrics count slices per profile.
    metrics = hub.api("GET", "../metrics").text
    assert 'cudaspawner_mig_slices{profile="1g.10gb",state="free"} 4.0' in metrics, metrics[-2000:]


def test_the_form_and_the_api_on_a_mixed_host(hub_factory, docker_client):
    """An H100 whole, an H100 in MIG mode (one 3g.40gb, four 1g.10gb) and an L4."""
    hub, admin = deployment(hub_factory, "mixed")
    dee, eve = user(hub, admin, "mixdee"), user(hub, admin, "mixeve")
    form = dee.get("hub/spawn/mixdee").text
    assert "3 of 3 free right now" in card(form, "gpu")
    assert "4 of 4 free right now" in card(form, "slice")
    assert "1 of 1 free right now" in card(form, "half")
    r = dee.spawn("mixdee", {"profile": "half"})
    assert r.status_code in (201, 202), r.text
    hub.wait_ready("mixdee")
    mig = _env(container_of(docker_client, "mixdee"))["NVIDIA_VISIBLE_DEVICES"]
    assert mig == "MIG-h100b-3g40gb-0"
    # The split H100 is no longer offered whole; its 1g slices still are.
    form = eve.get("hub/spawn/mixeve").text
    assert "2 of 3 free right now" in card(form, "gpu")
    assert "4 of 4 free right now" in card(form, "slice")
    assert "needs 1 MIG 3g.40gb slice, 0 free of 1" in card(form, "half")
    r = eve.spawn("mixeve", {"profile": "half"})
    assert r.status_code == 409, r.text
    assert r.json()["message"] == (
        "1 MIG 3g.40gb slice requested, 0 free of 1; pick the CPU profile or try again later."
    )
