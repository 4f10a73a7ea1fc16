"""The default deployment, as a new user first sees it: no site profiles at all.

The spawn page offers "CPU only" and "PyTorch 2.9 / CUDA 12.8"; this host has no GPUs, so
the CUDA card is there but unavailable, with the reason beside it. Starting "CPU only" lands
in JupyterLab, in a container of the CPU image.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_up_and_log_in, wait_for_lab, watch
from tests.hubtools import container_name, container_of

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.hub]


@pytest.fixture
def secure_context(browser):
    # The self-signed certificate of a first start, accepted once as a person would.
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
    yield context
    context.close()


def test_default_cards_on_a_host_without_gpus_and_a_cpu_spawn_lands_in_lab(
    hub_factory, secure_context, docker_client
):
    hub = hub_factory(secure=True)  # no extra configuration: the deployment as shipped
    page = secure_context.new_page()
    watch(page)  # from the first request: what a blank Lab page loaded, if it happens
    page.set_default_timeout(60000)
    try:
        # A signed-up, approved, ordinary user: the seat the platform is for.
        sign_up_and_log_in(page, hub, "newcomer", "newcomer-long-passphrase")

        page.wait_for_url(re.compile(r"/hub/spawn"))
        cards = page.locator(".cudaspawner-profile")
        expect(cards).to_have_count(2)
        cpu = page.get_by_label("CPU only")
        cuda = page.get_by_label("PyTorch 2.9 / CUDA 12.8", exact=True)
        expect(cpu).to_be_checked()
        expect(cpu).to_be_enabled()
        expect(cuda).to_be_disabled()
        cuda_card = page.locator('.cudaspawner-profile[data-profile="pytorch-cuda"]')
        expect(cuda_card).to_contain_text(re.compile("no GPUs", re.I))
        expect(cuda_card).to_contain_text("cudaspawner/pytorch-cuda:2.9-cuda12.8")
        cpu_card = page.locator('.cudaspawner-profile[data-profile="cpu"]')
        expect(cpu_card).to_contain_text("cudaspawner/cpu:latest")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "default-deployment-form.png"), full_page=True)

        page.get_by_role("button", name=re.compile("Start")).click()
        # Lab on the user's own origin (newcomer.<the hub's name>), not the hub's.
        page.wait_for_url(re.compile(r"://newcomer\.[^/]+/user/newcomer/lab"), timeout=120000)
        # JupyterLab's first load on a busy 2-core machine can take over a minute.
        wait_for_lab(page, docker_client, container_name("newcomer"))
        container = container_of(docker_client, "newcomer")
        assert container.attrs["Config"]["Image"] == "cudaspawner/cpu:latest"
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "default-deployment-lab.png"))
        hub.api("DELETE", "users/newcomer/server")
