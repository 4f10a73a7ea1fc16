"""The CPU single-user image after its start-up trimming still does everything users need."""

from __future__ import annotations

import contextlib
import secrets
import time

import pytest
import requests

pytestmark = [pytest.mark.docker]

IMAGE = "cudaspawner/cpu:latest"


@contextlib.contextmanager
def jupyter_server_in(docker_client, image: str, base_url: str = "/user/imgtest/"):
    """A Jupyter server running from `image` as the image's own user, hardened as the
    spawner runs it, on a non-default base URL; yields (container, base URL, auth headers)."""
    token = secrets.token_hex(16)
    c = docker_client.containers.run(
        image,
        [
            "jupyter",
            "server",
            "--ip=0.0.0.0",
            "--port=8888",
            f"--ServerApp.base_url={base_url}",
            f"--IdentityProvider.token={token}",
            "--ServerApp.open_browser=False",
        ],
        detach=True,
        environment={"NVIDIA_VISIBLE_DEVICES": "void"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        labels={"org.cudaspawner.test": "image"},
    )
    try:
        c.reload()
        ip = c.attrs["NetworkSettings"]["IPAddress"]
        base = f"http://{ip}:8888{base_url}"
        headers = {"Authorization": f"token {token}"}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "api/status", headers=headers, timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            raise AssertionError(c.logs().decode(errors="replace"))
        yield c, base, headers
    finally:
        c.remove(force=True)


@pytest.fixture(scope="module")
def server(docker_client):
    with jupyter_server_in(docker_client, IMAGE) as running:
        yield running


def test_jupyterlab_and_notebook_are_served(server):
    _, base, headers = server
    lab = requests.get(base + "lab", headers=headers, timeout=10)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    tree = requests.get(base + "tree", headers=headers, timeout=10)
    assert tree.status_code == 200
    extensions = requests.get(base + "lab/api/extensions", headers=headers, timeout=10).json()
    names = {e["name"] for e in extensions}
    assert "cudaspawner-gpu-panel" in names or "@cudaspawner/gpu-panel" in names, names


def test_gpu_api_answers_in_a_cpu_container(server):
    _, base, headers = server
    status = requests.get(base + "api/gpu/v1/status", headers=headers, timeout=10).json()
    assert status["state"] == "no_gpu"
    assert "No GPU" in status["message"]


def test_every_shipped_server_extension_loads(server):
    c, _, _ = server
    code, out = c.exec_run(["jupyter", "server", "extension", "list"])
    text = out.decode()
    assert code == 0, text
    for name in ["jupyterlab", "notebook", "nbextension", "jupyter_server_terminals"]:
        assert name in text
    assert "validation failed" not in text, text
    logs = c.logs().decode(errors="replace")
    assert "failed loading" not in logs, logs


def test_event_validation_still_works_without_rfc3987_syntax(server):
    c, _, _ = server
    script = """
import importlib.util, io, logging
from jupyter_events import EventLogger
assert importlib.util.find_spec("rfc3987_syntax") is None, "the trimmed module is back"
schema = {"$id": "https://cudaspawner.test/ev", "version": "1", "type": "object",
          "properties": {"n": {"type": "integer"}}, "required": ["n"]}
out = io.StringIO()
log = EventLogger(handlers=[logging.StreamHandler(out)])
log.register_event_schema(schema)
log.emit(schema_id=schema["$id"], data={"n": 1})
try:
    log.emit(schema_id=schema["$id"], data={"n": "one"})
except Exception as e:
    print("refused:", type(e).__name__)
print("emitted:", out.getvalue().count("cudaspawner.test"))
"""
    code, out = c.exec_run(["python", "-c", script])
    text = out.decode()
    assert code == 0, text
    assert "refused: ValidationError" in text and "emitted: 1" in text


def test_the_server_process_never_imports_torch(server):
    c, _, _ = server
    code, out = c.exec_run(["sh", "-c", "grep -c libtorch /proc/1/maps || true"])
    assert out.decode().strip() == "0"
    # ...while torch itself is there for notebooks (a CPU build in this image).
    code, out = c.exec_run(["python", "-c", "import torch; print(torch.__version__)"])
    assert code == 0 and out.decode().strip().startswith("2.")


def test_the_cpu_image_says_it_needs_no_driver_and_no_gpu_architecture(docker_client):
    """Issue 27: the build check labels every image; the CPU twin needs nothing of a host."""
    labels = docker_client.images.get("cudaspawner/cpu:latest").labels
    assert labels["org.cudaspawner.cuda"] == "none"
    assert labels["org.cudaspawner.min-driver"] == "none"
    assert labels["org.cudaspawner.cuda-archs"] == "none"
