"""Issue 27 on a real hub and engine: a GPU profile whose image has no kernels for this
host's cards is unavailable on the form with the reason, and the REST API refuses it (409,
the same sentence) before any GPU is reserved, while the project's CUDA image on the same
host is offered. The hosts are SIMULATED NVML hosts (tests/gpu_hosts: a Blackwell card under
driver 575, two A100s under driver 470) and a listed inventory with its driver given; nothing
here starts a GPU container (the MIG hosts, whose free counts matter, are in test_mig_hub).
The form and the API are a signed-up, approved user's of the default deployment."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import pytest

from tests.conftest import CUDA_IMAGE
from tests.hubtools import Browser, hub_containers
from tests.integration.test_security import admin_password, approve, logged_in, signup

pytestmark = [pytest.mark.docker, pytest.mark.hub]

OLD_IMAGE = "cudaspawner/cpu:compat-cu124"  # the CPU image, labelled as an older CUDA build
OLD_LABELS = {
    "org.cudaspawner.cuda": "12.4",
    "org.cudaspawner.min-driver": "525.60.13",
    "org.cudaspawner.cuda-archs": "sm_70 sm_75 sm_80 sm_86 sm_90",
}
HOSTS = Path(__file__).resolve().parent.parent / "gpu_hosts"
PROFILES = f"""
c.CUDADockerSpawner.profiles = [
    {{"slug": "cpu", "display_name": "CPU only", "default": True}},
    {{"slug": "old", "display_name": "PyTorch 2.4 / CUDA 12.4", "image": "{OLD_IMAGE}",
      "gpus": 1}},
    {{"slug": "new", "display_name": "PyTorch 2.9 / CUDA 12.8", "image": "{CUDA_IMAGE}",
      "gpus": 1}},
]
"""
CONFIG = f'c.CUDADockerSpawner.gpu_inventory = "simulated-nvml:{HOSTS}/blackwell.json"\n' + PROFILES
LISTED = (
    """
c.CUDADockerSpawner.gpu_inventory = [
    {"id": "0", "name": "RTX PRO 6000 Blackwell", "compute_capability": "12.0"},
]
c.CUDADockerSpawner.gpu_driver_version = "575.51.03"
"""
    + PROFILES
)
SENTENCE = "This image's PyTorch has no kernels for this host's sm_120 GPUs."


def relabelled(docker_client, base: str, tag: str, labels: dict[str, str]):
    """`base` under `tag` with these labels (a metadata-only build), removed afterwards."""
    lines = "".join(f'LABEL "{k}"="{v}"\n' for k, v in labels.items())
    docker_client.images.build(
        fileobj=io.BytesIO(f"FROM {base}\n{lines}".encode()),
        tag=tag,
        labels={"org.cudaspawner.test": "image-compat"},
        rm=True,
    )
    yield tag
    docker_client.images.remove(tag, noprune=True)


@pytest.fixture
def old_image(docker_client):
    yield from relabelled(docker_client, "cudaspawner/cpu:latest", OLD_IMAGE, OLD_LABELS)


def profile_input(form: str, slug: str) -> str:
    found = re.search(rf'<input[^>]*name="profile"[^>]*value="{slug}"[^>]*>', form)
    assert found, form[-3000:]
    return found.group(0)


def signed_up_user(hub, name: str) -> Browser:
    """On the default deployment: `name` signs up, the admin approves, `name` signs in."""
    admin = Browser(hub)
    assert logged_in(admin.login("admin", admin_password(hub)))
    signup(hub, name, f"{name}-long-passphrase")
    approve(admin, name)
    browser = Browser(hub)
    assert logged_in(browser.login(name, f"{name}-long-passphrase"))
    return browser


def refused_on_form_and_api(
    hub, docker_client, browser: Browser, name: str, slug: str, sentence: str
) -> None:
    """As that signed-in user: `slug` is unavailable with `sentence`, the API refuses it
    (409, the same sentence) and no container is made; the CPU profile stays available."""
    form = html.unescape(browser.get(f"hub/spawn/{name}").text)
    assert " disabled" in profile_input(form, slug), form[-3000:]
    assert " disabled" not in profile_input(form, "cpu")
    reason = re.search(rf'cudaspawner-reason" id="[^"]*{slug}[^"]*-reason">\s*([^<]*)<', form)
    assert reason and " ".join(reason.group(1).split()).endswith(sentence), form[-3000:]
    r = browser.spawn(name, {"profile": slug})
    assert r.status_code == 409 and r.json()["message"] == sentence, r.text
    assert hub_containers(docker_client, hub) == []
    assert "image_incompatible" in hub.api("GET", "../metrics").text


def test_an_image_without_kernels_for_the_card_is_unavailable_and_refused(
    hub_factory, docker_client, old_image, cuda_image
):
    hub = hub_factory(CONFIG, secure=True)
    ann = signed_up_user(hub, "compatann")
    refused_on_form_and_api(hub, docker_client, ann, "compatann", "old", SENTENCE)
    # The project's CUDA 12.8 image has Blackwell kernels: offered on the same host.
    assert " disabled" not in profile_input(ann.get("hub/spawn/compatann").text, "new")


def test_an_image_needing_a_newer_driver_than_the_host_has_is_refused(
    hub_factory, docker_client, cuda_image
):
    hub = hub_factory(
        f'c.CUDADockerSpawner.gpu_inventory = "simulated-nvml:{HOSTS}/old-driver.json"\n'
        + PROFILES,
        secure=True,
    )
    sentence = (
        "This image needs NVIDIA driver 525.60.13 or newer (CUDA 12.8); this host has 470.82.01."
    )
    dee = signed_up_user(hub, "compatdee")
    refused_on_form_and_api(hub, docker_client, dee, "compatdee", "new", sentence)


SITE_IMAGE = "cudaspawner/pytorch-cuda:compat-unlabelled"  # ours, its labels emptied
OLD_DRIVER = LISTED.replace('"575.51.03"', '"560.35.03"').replace(OLD_IMAGE, SITE_IMAGE)


@pytest.fixture
def site_image(docker_client):
    emptied = dict.fromkeys(OLD_LABELS, "")
    yield from relabelled(docker_client, CUDA_IMAGE, SITE_IMAGE, emptied)


def test_an_image_that_does_not_say_is_asked_once_at_its_first_start(
    hub_factory, docker_client, site_image
):
    """A site's own image without the labels: its python and torch are asked once (no GPU,
    no network), the answer kept by image id; a Blackwell host under a driver older than
    570 then refuses it with the sentence, before any GPU is reserved."""
    hub = hub_factory(OLD_DRIVER)
    hub.api("POST", "users", json={"usernames": ["compatbob"]})
    sentence = (
        "This host's sm_120 GPUs need NVIDIA driver 570.26 or newer; this host has 560.35.03."
    )
    for _ in range(2):
        r = hub.api("POST", "users/compatbob/server", json={"profile": "old"})
        assert r.status_code == 409 and r.json()["message"] == sentence, r.text
    assert hub.log().count(f"Inspected {SITE_IMAGE} once for CUDA") == 1
    # The probe was this hub's, and is gone; no server container was made.
    assert (
        docker_client.containers.list(all=True, filters={"label": "org.cudaspawner.image-probe"})
        == []
    )
    assert hub_containers(docker_client, hub) == []
