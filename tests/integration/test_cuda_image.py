"""The PyTorch 2.9 / CUDA 12.8 image, built here from the local base and wheelhouse, on the
real engine. No GPU here: every check below is one that holds without a GPU or a driver
(the libraries load; no device is opened), so nothing is skipped."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import CUDA_IMAGE
from tests.integration.test_image import IMAGE as CPU_IMAGE
from tests.integration.test_image import jupyter_server_in

pytestmark = [pytest.mark.docker]

RUN = {"remove": True, "network_mode": "none", "labels": {"org.cudaspawner.test": "cuda-image"}}

TORCH_REPORT = """
import json, torch
print(json.dumps({
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version(),
    "nccl": list(torch.cuda.nccl.version()) if torch.version.cuda else None,
    "gpus": torch.cuda.device_count(),
}))
"""

# CUDA runtime, cuDNN and NCCL library files anywhere Python looks, plus nvidia-* packages
# (the NVML bindings of the GPU panel aside: they talk to the host's driver, hold no CUDA).
CUDA_CONTENTS = """
import importlib.metadata as md, json, os, re, sys
pattern = re.compile(r"^lib(cudart|cudnn|nccl)[^/]*[.]so")
libs = sorted({f for p in sys.path if os.path.isdir(p) for _, _, fs in os.walk(p)
               for f in fs if pattern.match(f)})
pkgs = sorted(d.metadata["Name"] for d in md.distributions()
              if d.metadata["Name"].lower().startswith("nvidia-")
              and d.metadata["Name"].lower() != "nvidia-ml-py")  # NVML bindings, no CUDA
print(json.dumps({"libs": libs, "packages": pkgs}))
"""


def _python(docker_client, image: str, script: str) -> dict:
    out = docker_client.containers.run(image, ["python", "-c", script], **RUN)
    return json.loads(out.decode().strip().splitlines()[-1])


def test_the_cuda_image_runs_as_jovyan_not_root(docker_client, cuda_image):
    assert cuda_image.attrs["Config"]["User"] == "1000:100"
    out = docker_client.containers.run(CUDA_IMAGE, ["sh", "-c", "id -u; id -g; echo $HOME"], **RUN)
    assert out.decode().split() == ["1000", "100", "/home/jovyan"]


def test_torch_2_9_1_is_built_for_cuda_12_8_and_cudnn_and_nccl_load_without_a_gpu(
    docker_client, cuda_image
):
    report = _python(docker_client, CUDA_IMAGE, TORCH_REPORT)
    assert report["torch"].startswith("2.9.1"), report
    assert report["cuda"] == "12.8", report
    assert report["cudnn"] and report["cudnn"] >= 90000, report  # cuDNN 9
    assert report["nccl"][:2] == [2, 27], report
    assert report["gpus"] == 0  # no GPU here, and none pretended


def test_labels_and_lock_name_what_the_image_holds(docker_client, cuda_image):
    labels = cuda_image.labels
    assert labels["org.cudaspawner.torch"].startswith("2.9.1")
    assert labels["org.cudaspawner.cuda"] == "12.8"
    assert labels["org.cudaspawner.cudnn"].startswith("9.")
    assert labels["org.cudaspawner.nccl"].startswith("2.27.")
    assert labels["org.cudaspawner.python"].startswith("3.11.")
    assert labels["org.cudaspawner.jupyterlab"].startswith("4.")
    # What the hub checks a host against before a start (issue 27): the driver CUDA 12.8
    # needs, from the one table, and the architectures torch was built for, read without
    # a GPU: Blackwell (sm_100, sm_120) among them in a CUDA 12.8 build.
    assert labels["org.cudaspawner.min-driver"] == "525.60.13"
    archs = labels["org.cudaspawner.cuda-archs"].split()
    assert {"sm_80", "sm_90", "sm_100", "sm_120"} <= set(archs), archs
    from importlib.metadata import version

    assert labels["org.opencontainers.image.version"] == version("cudaspawner")
    lock = docker_client.containers.run(
        CUDA_IMAGE, ["cat", "/opt/cudaspawner/requirements.lock"], **RUN
    ).decode()
    pins = dict(line.split("==", 1) for line in lock.splitlines() if "==" in line)
    assert pins["torch"].startswith("2.9.1")
    assert pins["nvidia-cudnn-cu12"].startswith("9.")
    assert pins["nvidia-nccl-cu12"].startswith("2.27.")
    assert pins["jupyterlab"] == labels["org.cudaspawner.jupyterlab"]
    assert pins["cudaspawner"] == version("cudaspawner")


def cpu_image_is_the_cuda_image(docker_client) -> bool:
    """True on a site where no CPU build of torch could be had (PyPI only): build.sh then
    makes the CPU image the CUDA image, and says so in the wheelhouse (NO-CPU-TORCH)."""
    same = docker_client.images.get(CPU_IMAGE).id == docker_client.images.get(CUDA_IMAGE).id
    marker = Path(os.environ.get("CUDASPAWNER_WHEELHOUSE", "/var/cache/cudaspawner/wheelhouse"))
    assert same == (marker / "cpu" / "NO-CPU-TORCH").exists(), "build.sh and the images disagree"
    return same


def test_the_cpu_image_has_no_cuda_libraries_and_the_cuda_image_has_them(docker_client, cuda_image):
    cpu = _python(docker_client, CPU_IMAGE, CUDA_CONTENTS)
    if cpu_image_is_the_cuda_image(docker_client):
        assert cpu == _python(docker_client, CUDA_IMAGE, CUDA_CONTENTS)  # one image, two names
    else:
        assert cpu == {"libs": [], "packages": []}, cpu
    cuda = _python(docker_client, CUDA_IMAGE, CUDA_CONTENTS)
    names = " ".join(cuda["libs"])
    for lib in ("libcudart", "libcudnn", "libnccl"):
        assert lib in names, cuda["libs"]
    assert {"nvidia-cuda-runtime-cu12", "nvidia-cudnn-cu12", "nvidia-nccl-cu12"} <= set(
        cuda["packages"]
    )


@pytest.mark.parametrize(
    ("image", "claimed", "refusal"),
    [
        (CPU_IMAGE, "cuda", "lost its CUDA build"),
        (CUDA_IMAGE, "cpu", "the CPU image holds CUDA packages"),
    ],
)
def test_the_build_check_refuses_an_image_that_is_not_what_it_claims(
    docker_client, cuda_image, image, claimed, refusal
):
    if image == CPU_IMAGE and cpu_image_is_the_cuda_image(docker_client):
        image, claimed, refusal = CUDA_IMAGE, "cpu", "the CPU image holds CUDA packages"
    # The same check that runs at the end of every build, run on the other image.
    c = docker_client.containers.run(
        image,
        ["python", "/opt/cudaspawner/image_check.py", "--flavour", claimed, "--out", "/tmp/c"],
        detach=True,
        network_mode="none",
        labels=RUN["labels"],
    )
    try:
        assert c.wait(timeout=120)["StatusCode"] == 1
        assert refusal in c.logs(stdout=False, stderr=True).decode()
    finally:
        c.remove(force=True)


@pytest.fixture(scope="module")
def cuda_server(docker_client, cuda_image):
    with jupyter_server_in(docker_client, CUDA_IMAGE) as running:
        yield running


def _finished_verification(base: str, headers: dict) -> dict:
    """The verification's document once a run has finished (the server runs one at start)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        doc = requests.get(base + "api/gpu/v1/verify", headers=headers, timeout=10).json()
        if doc["state"] == "done":
            return doc
        if doc["state"] == "never_run":
            requests.post(base + "api/gpu/v1/verify", headers=headers, timeout=10)
        time.sleep(1)
    raise AssertionError(f"no verification finished in 180 s: {doc}")


def test_the_notebook_server_starts_and_the_gpu_api_says_no_gpu(cuda_server):
    c, base, headers = cuda_server
    assert requests.get(base + "lab", headers=headers, timeout=10).status_code == 200
    status = requests.get(base + "api/gpu/v1/status", headers=headers, timeout=10).json()
    assert status["state"] == "no_gpu"
    assert "No GPU" in status["message"]
    code, out = c.exec_run(["id", "-u"])
    assert out.decode().strip() == "1000"


def test_the_verification_names_torch_and_cuda_and_skips_the_gpu_checks(cuda_server):
    _, base, headers = cuda_server
    doc = _finished_verification(base, headers)
    assert doc["versions"]["torch"].startswith("2.9.1"), doc
    assert doc["versions"]["cuda"] == "12.8", doc
    checks = {c["id"]: c for c in doc["checks"]}
    assert checks["torch"]["status"] == "pass"
    assert checks["cuda"]["status"] == "skipped"
    assert "No GPU" in checks["cuda"]["reason"]
    assert checks["cpu_matmul"]["status"] == "pass"
    assert not [c for c in doc["checks"] if c["status"] == "fail"], doc["checks"]


def test_the_verification_names_cudnn_and_nccl_without_a_gpu(cuda_server):
    _, base, headers = cuda_server
    doc = _finished_verification(base, headers)
    assert (doc["versions"]["cudnn"] or "").startswith("9."), doc["versions"]
    assert (doc["versions"]["nccl"] or "").startswith("2.27."), doc["versions"]
