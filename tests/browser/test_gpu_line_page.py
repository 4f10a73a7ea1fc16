"""Issue 25 in the browser: an ordinary user of the default deployment finds the only GPU
taken, waits in line on the spawn page (its place in the tab's title), and lands in
JupyterLab with a browser notification when the GPU frees.

One stand-in GPU (the engine's `nvidia` runtime points at runc, as scripts/test.sh starts
it): the containers run with their device but see no GPU.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, sign_up_and_log_in, wait_for_lab, watch
from tests.hubtools import container_name, container_of
from tests.integration.test_gpu_line_hub import ONE_GPU  # one stand-in GPU

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.hub]


# Headless Chromium shows no notification and no permission prompt: the test grants the
# permission as the user's "Allow" would, and records each notification the page makes
# through the real constructor (the record survives the page turning into JupyterLab).
RECORD_NOTIFICATIONS = """
const Real = window.Notification;
if (Real) {
  window.Notification = function (title, options) {
    window.cudaspawnerNotified(title, (options || {}).body || "");
    return new Real(title, options);
  };
  Object.defineProperty(window.Notification, "permission", { get: () => Real.permission });
  window.Notification.requestPermission = (...a) => Real.requestPermission(...a);
}
"""


@pytest.fixture
def secure_context(browser):
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
    yield context
    context.close()


def test_a_user_waits_in_line_on_the_spawn_page_and_lands_in_lab_when_the_gpu_frees(
    hub_factory, secure_context, docker_client
):
    hub = hub_factory(ONE_GPU, secure=True)
    notified: list[tuple[str, str]] = []
    secure_context.expose_binding(
        "cudaspawnerNotified", lambda source, title, body: notified.append((title, body))
    )
    secure_context.add_init_script(RECORD_NOTIFICATIONS)
    secure_context.grant_permissions(["notifications"], origin=hub.url.rstrip("/"))
    hub.api("POST", "users/holder")
    assert hub.api("POST", "users/holder/server", json={"profile": "gpu"}).status_code in (
        201,
        202,
    )
    hub.wait_ready("holder")
    page = secure_context.new_page()
    watch(page)
    page.set_default_timeout(60000)
    try:
        sign_up_and_log_in(page, hub, "waiter", "waiter-long-passphrase")
        page.wait_for_url(re.compile(r"/hub/spawn"))
        gpu_card = page.locator('.cudaspawner-profile[data-profile="gpu"]')
        expect(gpu_card).to_contain_text("0 of 1 free right now")
        page.get_by_label("One GPU").check()
        wait_box = page.locator("#cudaspawner-profile-gpu-wait")
        expect(wait_box).to_be_checked()  # nothing is free: starting means waiting
        page.get_by_role("button", name=re.compile("Start")).click()

        # JupyterHub's own pending page, with the line's place and its reason, live.
        message = page.locator("#progress-message")
        expect(message).to_contain_text("you are number 1 in line", timeout=60000)
        expect(message).to_contain_text("0 of 1 GPUs free, 1 held")
        expect(message).to_contain_text("No estimate")
        # The tab says the place; the user is told a notification will come.
        expect(page).to_have_title(re.compile(r"^#1 in line for a GPU - "))
        expect(page.locator("#cudaspawner-notify-status")).to_have_text(
            "You will get a notification when your server is ready."
        )
        assert notified == []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "gpu-line-pending.png"), full_page=True)

        # The GPU frees (its holder stops): the page turns into JupyterLab by itself.
        assert hub.api("DELETE", "users/holder/server").status_code in (202, 204)
        page.wait_for_url(re.compile(r"://waiter\.[^/]+/user/waiter/lab"), timeout=120000)
        wait_for_lab(page, docker_client, container_name("waiter"))
        # The browser notification came as the server started.
        assert notified == [("Your server is ready", "A GPU is free: your server has started.")]
        env = container_of(docker_client, "waiter").attrs["Config"]["Env"]
        assert "NVIDIA_VISIBLE_DEVICES=0" in env
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "gpu-line-lab.png"))
        hub.api("DELETE", "users/waiter/server")
        hub.api("DELETE", "users/holder/server")
