"""Know before you start (issue 27): which image runs on which host, as pure rules, for the
hosts the issue names: an old driver, a Blackwell card with an image built without its
architecture, an H100 host, a mixed host; and the form and the REST API's sentences."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from spawner.docker_edge.image_compat import ChecksImage
from spawner.engine.failures import user_error
from spawner.gpu.allocator import Gpu
from spawner.gpu.cuda_compat import ImageNeeds, min_driver, refusal, runs_on
from spawner.gpu.inventory_list import parse_inventory
from spawner.planning.availability import profile_availability
from spawner.planning.profiles import parse_profiles

# What the project's PyTorch 2.9 / CUDA 12.8 image's build check writes.
TORCH_CU128 = {
    "org.cudaspawner.cuda": "12.8",
    "org.cudaspawner.min-driver": "525.60.13",
    "org.cudaspawner.cuda-archs": "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120",
}
# A site's older build: no Blackwell kernels.
TORCH_CU124 = {
    "org.cudaspawner.cuda": "12.4",
    "org.cudaspawner.min-driver": "525.60.13",
    "org.cudaspawner.cuda-archs": "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90",
}
CPU = {"org.cudaspawner.cuda": "none", "org.cudaspawner.min-driver": "none"}


def test_the_minimum_driver_comes_from_one_table_by_cuda_major():
    assert min_driver("12.8") == "525.60.13" and min_driver("12.0") == "525.60.13"
    assert min_driver("13.0") == "580.65.06" and min_driver("none") is None
    with pytest.raises(ValueError, match="No minimum driver is known for CUDA 9.2"):
        min_driver("9.2")


def test_kernels_run_on_the_same_major_at_a_higher_minor_and_ptx_runs_forward():
    assert runs_on(["sm_80"], "8.6") and not runs_on(["sm_86"], "8.0")
    assert not runs_on(["sm_90"], "10.0") and runs_on(["compute_90"], "12.0")
    assert runs_on(["sm_120"], "12.0") and not runs_on(["sm_100"], "12.0")


@pytest.mark.parametrize(
    ("host", "labels", "sentence"),
    [
        # An old driver.
        (("470.82.01", ["8.0"]), TORCH_CU128,
         "This image needs NVIDIA driver 525.60.13 or newer (CUDA 12.8); this host has 470.82.01."),
        # A Blackwell card, an image built without its architecture.
        (("575.51.03", ["12.0"]), TORCH_CU124,
         "This image's PyTorch has no kernels for this host's sm_120 GPUs."),
        # The same card with the project's image: it runs.
        (("575.51.03", ["12.0"]), TORCH_CU128, None),
        # Blackwell under a driver older than Blackwell's first.
        (("560.35.03", ["12.0"]), TORCH_CU128,
         "This host's sm_120 GPUs need NVIDIA driver 570.26 or newer; this host has 560.35.03."),
        # An H100 host; a mixed host where one kind of card lacks kernels.
        (("550.54.15", ["9.0", "9.0"]), TORCH_CU124, None),
        (("575.51.03", ["9.0", "10.0"]), TORCH_CU124,
         "This image's PyTorch has no kernels for this host's sm_100 GPUs."),
        # The CPU image, and an image that does not say: never refused.
        (("470.82.01", ["12.0"]), CPU, None),
        (("470.82.01", ["12.0"]), {}, None),
    ],
)  # fmt: skip
def test_each_host_gets_the_right_verdict_and_sentence(host, labels, sentence):
    driver, capabilities = host
    assert refusal(ImageNeeds.from_labels(labels), driver, capabilities) == sentence


def test_the_inventory_takes_a_compute_capability_and_says_what_is_wrong():
    (gpu,) = parse_inventory([{"id": "0", "name": "H100", "compute_capability": "9.0"}])
    assert gpu.compute_capability == "9.0"
    with pytest.raises(ValueError, match="'compute_capability' must look like \"9.0\""):
        parse_inventory([{"id": "0", "compute_capability": "hopper"}])


class Spawner(ChecksImage):
    """ChecksImage on a stand-in host and engine (what CUDADockerSpawner gives it)."""

    def __init__(self, driver: str, capabilities: list[str], images: dict[str, dict]) -> None:
        gpus = [Gpu(i, str(i), "GPU", cc) for i, cc in enumerate(capabilities)]
        self.host = SimpleNamespace(inventory=gpus, driver=driver, total=len(gpus))
        self.images = images
        self.gpu_driver_version = ""
        self.user = SimpleNamespace(name="ann")
        self.server_key = "ann"

    async def gpu_host(self):
        return self.host

    async def _inspect_image(self, image: str) -> dict:
        return {"Config": {"Labels": self.images[image]}}

    def _site_image(self) -> str:
        return "cpu"


PROFILES = parse_profiles(
    [
        {"slug": "cpu", "display_name": "CPU", "image": "cpu"},
        {"slug": "new", "display_name": "PyTorch 2.9", "image": "cu128", "gpus": 1},
        {"slug": "old", "display_name": "PyTorch 2.4", "image": "cu124", "gpus": 1},
    ]
)


async def test_the_form_marks_the_profile_unavailable_and_the_api_refuses_it_with_409():
    images = {"cpu": CPU, "cu128": TORCH_CU128, "cu124": TORCH_CU124}
    spawner = Spawner("575.51.03", ["12.0", "12.0"], images)
    reasons = await spawner._image_refusals(PROFILES)
    cards = profile_availability(PROFILES, 2, 2, {}, reasons)
    assert {slug: a.reason for slug, a in cards.items()} == {
        "cpu": None, "new": None,
        "old": "This image's PyTorch has no kernels for this host's sm_120 GPUs.",
    }  # fmt: skip
    with pytest.raises(type(user_error(409, ""))) as refused:
        await spawner._check_image_runs(PROFILES[2])
    assert refused.value.status_code == 409
    assert refused.value.jupyterhub_message.startswith("This image's PyTorch has no kernels")
    await spawner._check_image_runs(PROFILES[1])  # runs: nothing raised
    # A host that says nothing of its driver or cards is not checked.
    reasons = await Spawner("", ["", ""], images)._image_refusals(PROFILES)
    assert profile_availability(PROFILES, 2, 2, {}, reasons) is None


def test_the_probe_answer_of_an_unlabelled_image_becomes_its_needs():
    from spawner.docker_edge.image_probe import needs_from_answer

    found = needs_from_answer('noise\n{"cuda": "12.8", "archs": ["sm_90", "sm_120"]}\n')
    assert found == ImageNeeds("12.8", "525.60.13", ("sm_90", "sm_120"))
    assert needs_from_answer('{"cuda": null, "archs": []}') == ImageNeeds(None, None, ())
    # No answer, or a CUDA the table does not know: not known, so never refused.
    assert needs_from_answer("Traceback ...") is None
    assert needs_from_answer('{"cuda": "9.2", "archs": []}') is None
    # A site's image built on ours with the labels emptied counts as unlabelled.
    assert ImageNeeds.from_labels({**TORCH_CU128, "org.cudaspawner.cuda": ""}) is None
