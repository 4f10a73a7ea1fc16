"""Issue 16 in the browser: the GPU admin page behind hub OAuth, and the idle warning.

An admin finds the page under Services on the hub's home, sees every GPU with its holder,
server, profile, live utilisation and memory, stops a server from it and sees its GPU free; a
non-admin gets 403 with a sentence. Real hub and engine, simulated GPUs in the user image.

The user's side of reclaim: a warning the service posts shows in the GPU panel and the status
bar with the time left, and "Keep my GPUs" withdraws it and tells the server.
"""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tests.ops.test_reclaim_hub import simulated_profiles

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.hub]


def _login(context, hub, user: str, password: str):
    page = context.new_page()
    page.set_default_timeout(60000)
    page.goto(hub.url + "hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(re.compile(r"/(hub|user)/"))
    return page


def test_admin_sees_every_gpu_and_stops_a_server_a_user_gets_403(hub_factory, browser, tmp_path):
    # Reclaim off: this test is about the page, not the clock.
    # carl may reach the service (a role grants it) but is no admin: the page itself says no.
    hub = hub_factory(
        simulated_profiles(tmp_path)
        + "c.GpuReclaim.enabled = False\n"
        + "c.JupyterHub.load_roles.append({'name': 'fleet-visitors', 'users': ['opscarl'],"
        + " 'scopes': ['access:services!service=gpu-admin']})\n"
    )
    hub.api("POST", "users", json={"usernames": ["opsann", "opsbob"]})
    for user, profile in (("opsann", "idle"), ("opsbob", "busy")):
        r = hub.api("POST", f"users/{user}/server", json={"profile": profile})
        assert r.status_code in (201, 202), r.text
    for user in ("opsann", "opsbob"):
        hub.wait_ready(user)
    admin_password = (hub.data_dir / "admin-password").read_text().strip()

    admin = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = _login(admin, hub, "admin", admin_password)
        page.goto(hub.url + "hub/home")
        expect(page.locator('a[href$="/services/gpu-admin/"]')).to_have_count(1)
        page.goto(hub.service_url("gpu-admin"))  # hub OAuth, then the page
        expect(page.get_by_role("heading", name="GPU fleet")).to_be_visible()
        bob = page.locator('tr.held[data-user="opsbob"]')
        expect(bob).to_have_count(1, timeout=30000)
        expect(bob).to_contain_text("busy")
        expect(bob).to_contain_text("Simulated H100")
        expect(bob).to_contain_text("90 %")
        expect(bob).to_contain_text("1.0 / 80.0")
        ann = page.locator('tr[data-user="opsann"]')
        expect(ann).to_contain_text("idle")
        expect(ann).to_contain_text("0 %")
        expect(page.locator("tr.free")).to_have_count(2)
        expect(page.locator('[data-role="summary"]')).to_contain_text(
            "2 of 4 GPUs held by 2 servers"
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "gpu-admin-page.png"), full_page=True)

        page.locator('button[data-role="stop"][data-server="opsann"]').click()
        expect(page.get_by_role("status")).to_contain_text("Stopped opsann's server")
        hub.wait_stopped("opsann")
        expect(page.locator("tr.free")).to_have_count(3)
        expect(page.locator('tr[data-user="opsann"]')).to_have_count(0)
        assert hub.api("GET", "users/opsbob").json()["servers"][""]["ready"]

        # The Usage view (issue 26): both holds, the chart, and a CSV that sums to the table.
        page.get_by_role("link", name="GPU usage and CSV").click()
        expect(page.get_by_role("heading", name="GPU usage")).to_be_visible()
        table = page.locator('table[data-role="usage-user"]')
        expect(table.locator('tr[data-key="opsann"]')).to_have_count(1)
        expect(table.locator('tr[data-key="opsbob"]')).to_have_count(1)
        expect(page.locator('[data-role="chart"] svg rect.bar').first).to_be_attached()
        shown = {
            row.get_attribute("data-key"): float(row.locator("td").nth(1).inner_text())
            for row in table.locator("tbody tr[data-key]").all()
        }
        with page.expect_download() as download:
            page.locator('a[data-role="csv-user"]').click()
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        assert {r["user"] for r in rows} == {"opsann", "opsbob"}
        for r in rows:  # the page rounds to 2 decimals, the CSV to 4; opsbob's hold is open
            assert abs(float(r["gpu_hours"]) - shown[r["user"]]) <= 0.011, (r, shown)
        page.screenshot(path=str(ARTIFACTS / "gpu-usage-view.png"), full_page=True)
    finally:
        admin.close()

    # Without access to the service the hub itself refuses; with access but no admin flag,
    # the page refuses with its sentence. Neither sees a row of the table.
    for name, sentence in (("opsbob", ""), ("opscarl", "Only hub admins can see the GPU fleet")):
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        try:
            page = _login(context, hub, name, hub.user_password)
            for path in ("", "usage", "holds.csv?period=day"):
                response = page.goto(hub.service_url("gpu-admin", path))
                assert response is not None and response.status == 403, (name, path)
                body = page.locator("body").inner_text()
                assert sentence in body and "Simulated H100" not in body, body[:500]
                assert "opsann" not in body, body[:500]
        finally:
            context.close()

    # An ordinary user sees their own GPU-hours above the spawn form.
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        page = _login(context, hub, "opsann", hub.user_password)
        page.goto(hub.url + "hub/spawn/opsann")
        note = page.locator('[data-role="usage"]')
        expect(note).to_have_text(
            re.compile(r"^Your GPU use: \d+\.\d\d GPU-hours this week, \d+\.\d\d this month\.$")
        )
    finally:
        context.close()


def test_idle_warning_shows_in_panel_and_status_bar_and_keep_withdraws_it(gpu_server, page):
    warning = {"stop_at": time.time() + 600, "idle_seconds": 3600}
    r = requests.post(
        gpu_server.url + "api/gpu/v1/reclaim",
        json=warning,
        headers={"Authorization": f"token {gpu_server.token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    page.goto(gpu_server.page("lab"))
    item = page.locator(".jp-GpuStatusItem")
    expect(item).to_have_text(re.compile(r"^GPU idle: stops in (10:00|9:\d\d)$"), timeout=60000)
    item.click()
    banner = page.locator('#cudaspawner-gpu-panel [data-role="idle-warning"]')
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Your GPUs have been idle for 1 h.")
    expect(banner).to_contain_text("This server stops in")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "idle-warning.png"))

    page.get_by_role("button", name="Keep my GPUs").click()
    expect(banner).to_be_hidden()
    expect(item).to_have_text(re.compile(r"^GPU 0: "))
    notice = gpu_server.api("reclaim").json()
    assert notice["warning"] is None and notice["kept_at"] > warning["stop_at"] - 600
