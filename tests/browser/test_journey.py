"""The whole journey, in the browser, through the real hub, proxy and engine, as shipped.

Sign up on the hub (HTTPS, NativeAuthenticator, internal TLS), get approved, log in as that
ordinary user, pick the CPU profile in the form, land in JupyterLab in the container (on the
user's own host name), open the GPU panel, and see "No GPU assigned"
beside a passing CPU verification.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_up_and_log_in, wait_for_lab, watch
from tests.hubtools import container_name

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.hub]

PROFILES = """
c.CUDADockerSpawner.profiles = [
    {"slug": "cpu", "display_name": "CPU only", "default": True,
     "description": "PyTorch on CPU, for data preparation"},
    {"slug": "gpu", "display_name": "PyTorch / CUDA, 1 GPU", "gpus": 1},
]
"""


@pytest.fixture
def secure_context(browser):
    # The hub's certificate is self-signed (generated on first start): a person would accept
    # it once; the test does the same. Every other check of TLS is in test_security.
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
    yield context
    context.close()


def test_login_pick_cpu_profile_land_in_lab_and_see_the_gpu_panel(
    hub_factory, secure_context, docker_client
):
    hub = hub_factory(PROFILES, secure=True)
    page = secure_context.new_page()
    watch(page)  # from the first request: what a blank Lab page loaded, if it happens
    page.set_default_timeout(60000)
    try:
        # A signed-up, approved, ordinary user of the default deployment.
        sign_up_and_log_in(page, hub, "journeyer", "journeyer-long-passphrase")

        # The spawn form: this host has no GPUs, so the GPU profile cannot be started.
        page.wait_for_url(re.compile(r"/hub/spawn"))
        expect(page.get_by_label("CPU only")).to_be_checked()
        expect(page.get_by_label("PyTorch / CUDA, 1 GPU")).to_be_disabled()
        page.get_by_label("CPU only").check()
        page.get_by_role("button", name=re.compile("Start")).click()

        page.wait_for_url(re.compile(r"://journeyer\.[^/]+/user/journeyer/lab"), timeout=120000)
        wait_for_lab(page, docker_client, container_name("journeyer"))
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^View$")).click()
        page.locator(".lm-Menu-item", has_text="Show GPU panel").click()
        panel = page.locator("#cudaspawner-gpu-panel")
        expect(panel.locator('[data-role="status-notice"]')).to_contain_text("No GPU")
        expect(panel.locator('[data-role="verify-headline"]')).to_contain_text(
            "No GPU assigned", timeout=120000
        )
        cpu_check = panel.locator('.jp-GpuPanel-check[data-check-id="cpu_matmul"]')
        expect(cpu_check.locator(".jp-GpuPanel-checkStatus")).to_have_text(re.compile("pass", re.I))
    finally:
        from tests.browser.conftest import ARTIFACTS

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "journey-hub-to-gpu-panel.png"))
        hub.api("DELETE", "users/journeyer/server")
