"""The default deployment as `up.sh` starts it (HTTPS, native sign-up, internal TLS, its
managed services) with a site config of simulated GPUs, two signed-up, approved, ordinary
users, and one of them turning their own server hostile the way any user can.

`nbmal` starts a GPU server, writes a server extension into their home (as the container's
user, which is what a terminal in JupyterLab does) and restarts the server through the hub
as themselves. From then on their server answers whatever they like (`hostile_ext.py`).
The engine's runtime named `nvidia` is a stand-in for runc (scripts/test.sh), so GPU
containers start without a GPU.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# pytest-jupyter's own loop fixtures would take Playwright's event loop (as in tests/browser).
from tests.browser.conftest import (  # noqa: F401
    CHROMIUM_ARGS,
    jp_asyncio_loop,
    jp_server_cleanup,
)
from tests.hubtools import Browser, container_name, make_hub, remove_hub_leftovers
from tests.integration.test_security import admin_password, approve, logged_in, signup

HERE = Path(__file__).parent
UUIDS = [f"GPU-00000000-0000-4000-8000-0000000000a{i}" for i in range(4)]
MALLORY, HONEST = "nbmal", "nbhon"
# Mallory's profile: warned after 3 idle seconds, stopped 15 s later; the honest user's:
# warned after 3 s, stopped 4 s later. Looks every second.
POLICIES = {
    "mal": {"idle_after": 3, "warn_for": 15, "threshold": 10},
    "idle": {"idle_after": 3, "warn_for": 4, "threshold": 10},
}
HOSTILE_CONFIG = """
import os, sys
sys.path.insert(0, os.path.expanduser("~/.hostile"))
c.ServerApp.jpserver_extensions.update({"nbextension": False, "hostile_ext": True})
"""


def figures(utilisation: float, kept_at: float | None = None) -> bytes:
    """A well-formed status answer for one GPU (what the real extension sends)."""
    return json.dumps(
        {
            "state": "ok",
            "gpus": [
                {
                    "index": 0,
                    "uuid": UUIDS[0],
                    "name": "Simulated H100",
                    "utilization_gpu": utilisation,
                    "memory_used": 2**30,
                    "memory_total": 80 * 2**30,
                }
            ],
            "reclaim": {"warning": None, "kept_at": kept_at},
        }
    ).encode()


def _config(sim: Path) -> str:
    def profile(slug: str) -> dict:
        return {
            "slug": slug,
            "display_name": f"{slug} GPU",
            "gpus": 1,
            "environment": {
                "CUDASPAWNER_GPU_BACKEND": "simulated",
                "CUDASPAWNER_SIMULATED_GPUS": "/sim/idle.json",
            },
            "volumes": {str(sim): "/sim"},
        }

    inventory = [{"id": u, "name": "Simulated H100"} for u in UUIDS]
    profiles = [{"slug": "cpu", "display_name": "CPU", "default": True}]
    profiles += [profile("mal"), profile("idle")]
    return f"""
c.CUDADockerSpawner.gpu_inventory = {inventory!r}
c.CUDADockerSpawner.profiles = {profiles!r}
c.CUDADockerSpawner.gpu_request_style = "runtime"
c.Spawner.poll_interval = 1
c.GpuReclaim.interval = 1
c.GpuReclaim.policies = {POLICIES!r}
"""


@dataclass
class Deployment:
    hub: object
    admin: Browser
    users: dict[str, Browser]
    docker: object

    def container(self, user: str):
        return self.docker.containers.get(container_name(user))

    def write_home(self, user: str, path: str, data: bytes) -> None:
        """Write a file in the user's home as the container's user (atomically)."""
        code, out = self.container(user).exec_run(
            [
                "python3",
                "-c",
                "import base64,os,sys;p=os.path.expanduser(sys.argv[1]);"
                "os.makedirs(os.path.dirname(p),exist_ok=True);"
                "open(p+'.tmp','wb').write(base64.b64decode(sys.argv[2]));os.replace(p+'.tmp',p)",
                path,
                base64.b64encode(data).decode(),
            ],
            user="1000:100",
        )
        assert code == 0, out.decode()

    def answer_big(self, user: str, megabytes: int) -> None:
        """A status answer of `megabytes` MB (too big for a command line: made in place)."""
        code, out = self.container(user).exec_run(
            [
                "python3",
                "-c",
                "import json,os;p=os.path.expanduser('~/.hostile/answer');"
                f"d=json.dumps({{'state':'ok','gpus':[],'pad':'x'*{megabytes}*2**20}});"
                "open(p+'.tmp','w').write(d);os.replace(p+'.tmp',p)",
            ],
            user="1000:100",
        )
        assert code == 0, out.decode()

    def read_home(self, user: str, path: str) -> list[dict]:
        """The JSON lines the hostile extension recorded in `~/.hostile/<path>`."""
        code, out = self.container(user).exec_run(
            ["sh", "-c", f"cat ~/.hostile/{path} 2>/dev/null || true"], user="1000:100"
        )
        return [json.loads(line) for line in out.decode().splitlines() if line.strip()]

    def start_server(self, user: str, profile: str) -> None:
        r = self.users[user].spawn(user, {"profile": profile})
        assert r.status_code in (201, 202), r.text[:500]
        self.hub.wait_ready(user, timeout=120)

    def stop_server(self, user: str) -> None:
        b = self.users[user]
        r = b.session.delete(
            self.hub.url + f"hub/api/users/{user}/server",
            headers={"X-XSRFToken": b.xsrf},
            timeout=90,
        )
        assert r.status_code in (202, 204), r.text[:500]
        self.hub.wait_stopped(user, timeout=90)


@pytest.fixture
def browser():
    """Debian's chromium for one test: started and closed within it, so no event loop of
    Playwright's outlives it into the rest of the suite."""
    import os
    import shutil

    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("The browser tests need Debian's chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def wait_for(what: str, check, timeout: float, hub) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{hub.log()[-4000:]}")


@pytest.fixture(scope="package")
def deployment(tmp_path_factory, docker_client):
    from spawner.host.deployment import ensure_network
    from tests.hubtools import TEST_NETWORK

    ensure_network(docker_client, TEST_NETWORK)
    tmp = tmp_path_factory.mktemp("neighbour")
    sim = tmp / "sim"
    sim.mkdir()
    sim.chmod(0o755)
    # Every GPU of the inventory, idle: a container sees the one it was given.
    gpus = [
        json.loads(figures(0))["gpus"][0] | {"index": i, "uuid": u} for i, u in enumerate(UUIDS)
    ]
    (sim / "idle.json").write_text(
        json.dumps({"driver_version": "550.54.15", "cuda_driver_version": "12.4", "gpus": gpus})
    )
    (sim / "idle.json").chmod(0o644)
    hub = make_hub(tmp, _config(sim), secure=True)
    try:
        hub.start()
        admin = Browser(hub)
        assert logged_in(admin.login("admin", admin_password(hub)))
        users = {}
        for name in (MALLORY, HONEST):
            password = f"{name}-is-a-long-passphrase"
            signup(hub, name, password)
            approve(admin, name)
            users[name] = Browser(hub)
            assert logged_in(users[name].login(name, password))
        d = Deployment(hub, admin, users, docker_client)
        # Mallory turns their own server hostile: an extension in their home, a restart.
        d.start_server(MALLORY, "mal")
        d.write_home(MALLORY, "~/.hostile/hostile_ext.py", (HERE / "hostile_ext.py").read_bytes())
        d.write_home(MALLORY, "~/.hostile/answer", figures(90))
        d.write_home(MALLORY, "~/.jupyter/jupyter_server_config.py", HOSTILE_CONFIG.encode())
        d.stop_server(MALLORY)
        d.start_server(MALLORY, "mal")
        page = users[MALLORY].get(f"user/{MALLORY}/hostile/page")
        assert page.status_code == 200 and "hostile" in page.text, page.text[:300]
        yield d
    finally:
        for name in (MALLORY, HONEST):
            hub.api("DELETE", f"users/{name}/server")
        hub.stop()
        remove_hub_leftovers(docker_client, hub, [])
