"""Issue 17 in the browser: a user adds and removes an SSH key on the hub's keys page.

The deployment as shipped (HTTPS, NativeAuthenticator, internal TLS). Between the clicks,
Debian's OpenSSH client shows the gateway honouring the page at once: the added key logs
in (this user has no server, so the gateway says how to start one), the removed key is
refused.
"""

from __future__ import annotations

import re

import asyncssh
import pytest
from playwright.sync_api import expect

from spawner.ssh.hub_config import ssh_host_for
from tests.browser.conftest import ARTIFACTS, log_in
from tests.hubtools import free_port
from tests.integration.test_security import admin_password
from tests.ssh.sshtools import SshTarget, make_key, wait_for_port, write_known_hosts

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.hub]


@pytest.fixture
def secure_context(browser):
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1300, "height": 900})
    yield context
    context.close()


def test_a_key_added_on_the_page_logs_in_and_once_removed_is_refused(
    hub_factory, secure_context, tmp_path
):
    port = free_port()
    hub = hub_factory(
        secure=True, env={"CUDASPAWNER_SSH_PORT": str(port), "CUDASPAWNER_SSH_IP": "127.0.0.1"}
    )
    wait_for_port(port)
    known_hosts = tmp_path / "known_hosts"
    write_known_hosts(hub.data_dir, port, known_hosts)
    target = SshTarget(port, known_hosts)
    key = make_key(tmp_path, "laptop")
    fingerprint = asyncssh.import_public_key(key.public_line).get_fingerprint()
    host_fingerprint = asyncssh.read_private_key(
        str(hub.data_dir / "ssh_host_ed25519_key")
    ).get_fingerprint()

    page = secure_context.new_page()
    page.set_default_timeout(60000)
    try:
        log_in(page, hub, "admin", admin_password(hub))
        page.wait_for_url(re.compile(r"/hub/"))
        page.goto(hub.service_url("ssh"))  # hub OAuth, then the page
        expect(page.get_by_role("heading", name="SSH keys for admin")).to_be_visible()
        expect(page.locator("#no-keys")).to_be_visible()
        expect(page.locator("#host-fingerprint")).to_have_text(host_fingerprint)
        # The hub's public name is a *.localhost one: the command names this machine.
        host = ssh_host_for(hub.url)
        expect(page.locator("#ssh-command")).to_have_text(f"ssh -p {port} admin@{host}")

        # A private key pasted by mistake is explained, not stored.
        page.fill("textarea[name=key]", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n")
        page.get_by_role("button", name="Add key").click()
        expect(page.get_by_role("alert")).to_contain_text("That is a private key")
        expect(page.locator("#no-keys")).to_be_visible()

        page.fill("input[name=name]", "work laptop")
        page.fill("textarea[name=key]", key.public_line)
        page.get_by_role("button", name="Add key").click()
        expect(page.get_by_role("status")).to_contain_text(f"Added 'work laptop' ({fingerprint})")
        row = page.locator("tr.key")
        expect(row).to_have_count(1)
        expect(row.locator(".key-name")).to_have_text("work laptop")
        expect(row.locator(".key-fingerprint")).to_have_text(fingerprint)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ssh-keys-page.png"), full_page=True)

        r = target.ssh("admin", key, "true")
        assert r.returncode == 1, r.stderr  # logged in; no server to run it in
        assert "You have no running server. Start one at https://" in r.stderr

        page.get_by_role("button", name="Remove work laptop").click()
        expect(page.locator("tr.key")).to_have_count(0)
        expect(page.locator("#no-keys")).to_be_visible()
        r = target.ssh("admin", key, "true")
        assert r.returncode == 255 and "Permission denied (publickey)" in r.stderr
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ssh-keys-page-end.png"), full_page=True)
