"""Issue 27 on a real hub and engine: a GPU profile whose image has no kernels for this
host's cards is unavailable on the form with the reason, and the REST API refuses it (409,
the same sentence) before any GPU is reserved; the project's CUDA image on the same host
starts. The host is a listed inventory (a Blackwell card, compute capability 12.0) with its
driver given; nothing here starts a GPU container."""

from __future__ import annotations

import html
import io
import re

import pytest

from tests.hubtools import Browser, hub_containers

pytestmark = [pytest.mark.docker, pytest.mark.hub]

OLD_IMAGE = "cudaspawner/cpu:compat-cu124"  # the CPU image, labelled as an older CUDA build
OLD_LABELS = {
    "org.cudaspawner.cuda": "12.4",
    "org.cudaspawner.min-driver": "525.60.13",
    "org.cudaspawner.cuda-archs": "sm_70 sm_75 sm_80 sm_86 sm_90",
}
CONFIG = f"""
c.CUDADockerSpawner.gpu_inventory = [
    {{"id": "0", "name": "RTX PRO 6000 Blackwell", "compute_capability": "12.0"}},
]
c.CUDADockerSpawner.gpu_driver_version = "575.51.03"
c.CUDADockerSpawner.profiles = [
    {{"slug": "cpu", "display_name": "CPU only", "default": True}},
    {{"slug": "old", "display_name": "PyTorch 2.4 / CUDA 12.4", "image": "{OLD_IMAGE}",
      "gpus": 1}},
]
"""
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


def test_an_image_without_kernels_for_the_card_is_unavailable_and_refused(
    hub_factory, docker_client, old_image
):
    hub = hub_factory(CONFIG)
    hub.api("POST", "users", json={"usernames": ["compatann"]})
    ann = Browser(hub)
    assert ann.login("compatann", hub.user_password).status_code == 302
    form = html.unescape(ann.get("hub/spawn/compatann").text)
    old = re.search(r'<input[^>]*name="profile"[^>]*value="old"[^>]*>', form)
    assert old and " disabled" in old.group(0), form[-3000:]
    reason = re.search(r'cudaspawner-reason" id="[^"]*old[^"]*-reason">\s*([^<]*)<', form)
    assert reason and " ".join(reason.group(1).split()).endswith(SENTENCE), form[-3000:]
    r = ann.spawn("compatann", {"profile": "old"})
    assert r.status_code == 409 and r.json()["message"] == SENTENCE, r.text
    assert hub_containers(docker_client, hub) == []
    assert "image_incompatible" in hub.api("GET", "../metrics").text


SITE_IMAGE = "cudaspawner/pytorch-cuda:compat-unlabelled"  # ours, its labels emptied
OLD_DRIVER = CONFIG.replace('"575.51.03"', '"560.35.03"').replace(OLD_IMAGE, SITE_IMAGE)


@pytest.fixture
def site_image(docker_client):
    emptied = dict.fromkeys(OLD_LABELS, "")
    yield from relabelled(
        docker_client, "cudaspawner/pytorch-cuda:2.9-cuda12.8", SITE_IMAGE, emptied
    )


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
