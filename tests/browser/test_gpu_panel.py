"""The GPU panel in a real browser, against real `jupyter lab` servers on the simulated backend.

What a user sees is compared with what the server's API reports at the same moment, in
JupyterLab (right sidebar + status bar) and in Notebook 7 (reached through View > Show GPU
panel, since Notebook 7 shows no tab for the right sidebar and has no status bar).
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from playwright.sync_api import expect

from .conftest import GPU0_UTILISATION, TWO_GPUS
from .jupyter_process import JupyterServer

pytestmark = pytest.mark.browser

PANEL = "#cudaspawner-gpu-panel"
STATUS_ITEM = ".jp-GpuStatusItem"
UNITS = ["B", "KiB", "MiB", "GiB", "TiB"]


# What the panel should show for a value of the API, written independently of the TypeScript.
def number(value: float) -> str:
    text = f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"
    return text[:-2] if text.endswith(".0") else text


def memory(used: int, total: int) -> str:
    exponent = 0
    while total >= 1024 ** (exponent + 1) and exponent < len(UNITS) - 1:
        exponent += 1
    scale = 1024**exponent
    return f"{number(used / scale)}/{number(total / scale)} {UNITS[exponent]}"


def watts(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 10 else f"{value:.0f}"


def expected_metrics(gpu: dict) -> dict[str, str]:
    return {
        "utilization_gpu": f"{round(gpu['utilization_gpu'])}%",
        "memory_used": memory(gpu["memory_used"], gpu["memory_total"]),
        "temperature": f"{round(gpu['temperature'])} °C",
        "power_draw": f"{watts(gpu['power_draw'])}/{watts(gpu['power_limit'])} W",
    }


def wait_for_verification(server: JupyterServer, not_started_at: float | None = None) -> dict:
    """The verification once it is done (and, if given, started after `not_started_at`)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        verify = server.api("verify").json()
        if verify["state"] == "done" and verify["started_at"] != not_started_at:
            return verify
        time.sleep(0.5)
    raise AssertionError(f"The verification did not finish: {verify}")


def open_lab_panel(page, server: JupyterServer):
    """Open JupyterLab and the panel through the status-bar item, as a user would."""
    page.goto(server.page("lab"))
    item = page.locator(STATUS_ITEM)
    expect(item).to_be_visible(timeout=60000)
    item.click()
    panel = page.locator(PANEL)
    expect(panel).to_be_visible()
    return panel


def test_lab_panel_shows_both_gpus_with_the_values_the_api_reports(gpu_server, page):
    panel = open_lab_panel(page, gpu_server)
    cards = panel.locator(".jp-GpuPanel-card")
    expect(cards).to_have_count(2)
    status = gpu_server.api("status?history=0").json()
    assert status["state"] == "ok" and len(status["gpus"]) == 2
    expect(panel.locator(".jp-GpuPanel-driver")).to_contain_text(
        f"Driver {status['driver_version']} · CUDA {status['cuda_driver_version']}"
    )
    for gpu in status["gpus"]:
        card = panel.locator(f'[data-gpu-uuid="{gpu["uuid"]}"]')
        expect(card.locator(".jp-GpuPanel-cardTitle")).to_have_text(
            f"GPU {gpu['index']}: {gpu['name']}"
        )
        for metric, text in expected_metrics(gpu).items():
            value = card.locator(f'[data-metric="{metric}"] .jp-GpuPanel-metricValue')
            if metric == "utilization_gpu" and gpu["index"] == 0:
                # This one moves every second; it must be one of the values the server cycles.
                expect(value).to_have_text(re.compile("|".join(f"{u}%" for u in GPU0_UTILISATION)))
            else:
                expect(value).to_have_text(text)
        rows = card.locator(".jp-GpuPanel-processTable tbody tr")
        expect(rows).to_have_count(len(gpu["processes"]))
        for process in gpu["processes"]:
            expect(card.locator(".jp-GpuPanel-processTable")).to_contain_text(str(process["pid"]))
        foreign = gpu["foreign_processes"]["count"]
        foreign_text = card.locator('[data-role="foreign-processes"]')
        if foreign:
            expect(foreign_text).to_contain_text(f"{foreign} process")
            expect(foreign_text).to_contain_text("outside this container")
        else:
            expect(foreign_text).to_have_text("No processes outside this container")

    # The charts start from the server's history and keep growing with each poll.
    chart = panel.locator(
        f'[data-gpu-uuid="{status["gpus"][0]["uuid"]}"] [data-metric="utilization_gpu"] svg'
    )
    first = int(chart.get_attribute("data-points"))
    assert first >= 2, "the chart should start from the server's history"
    expect(chart).not_to_have_attribute("data-points", str(first), timeout=10000)
    assert chart.locator("path").get_attribute("d").startswith("M")


def test_lab_status_bar_shows_gpu0_and_follows_it(gpu_server, page):
    page.goto(gpu_server.page("lab"))
    item = page.locator(STATUS_ITEM)
    gpu0 = gpu_server.api("status?history=0").json()["gpus"][0]
    mem = re.escape(memory(gpu0["memory_used"], gpu0["memory_total"]))
    pattern = re.compile(rf"^GPU 0: ({'|'.join(map(str, GPU0_UTILISATION))})% · {mem} \(\+1\)$")
    expect(item).to_have_text(pattern, timeout=60000)
    first = item.inner_text()
    expect(item).not_to_have_text(first, timeout=10000)
    expect(item).to_have_text(pattern)
    # Screen readers get the same text and what the item does.
    assert "Open the GPU panel" in item.get_attribute("aria-label")
    # Keyboard users reach the panel with Enter. Lab activates its main-area widget (and so
    # takes the focus) once it has restored its layout, which on a busy machine can come after
    # the status bar fills: the item is seen focused again before each press.
    panel = page.locator(PANEL)
    for _ in range(3):
        item.focus()
        expect(item).to_be_focused()
        page.keyboard.press("Enter")
        try:
            expect(panel).to_be_visible(timeout=5000)
            break
        except AssertionError:
            continue
    expect(panel).to_be_visible()


def test_lab_verification_checklist_and_run_again(gpu_server, page):
    before = wait_for_verification(gpu_server)
    panel = open_lab_panel(page, gpu_server)
    for check in before["checks"]:
        row = panel.locator(f'.jp-GpuPanel-check[data-check-id="{check["id"]}"]')
        expect(row).to_have_attribute("data-status", check["status"])
        expect(row.locator(".jp-GpuPanel-checkTitle")).to_have_text(check["title"])
        expect(row.locator(".jp-GpuPanel-checkStatus")).to_have_text(
            {"pass": "Passed", "fail": "Failed", "skipped": "Skipped"}[check["status"]]
        )
        if check["reason"]:
            expect(row.locator(".jp-GpuPanel-checkReason")).to_have_text(check["reason"])
    expect(panel.locator(".jp-GpuPanel-check")).to_have_count(len(before["checks"]))
    expect(panel.locator(".jp-GpuPanel-versions")).to_contain_text(before["versions"]["torch"])
    last_run = panel.locator('[data-role="last-run"]')
    expect(last_run).to_contain_text("Last run")
    run_time = panel.locator('[data-role="last-run-time"]')
    shown_before = run_time.get_attribute("datetime")

    page.get_by_role("button", name="Run again").click()
    after = wait_for_verification(gpu_server, not_started_at=before["started_at"])
    assert after["started_at"] > before["started_at"]
    # The panel follows the new run to its end and shows its time.
    expect(run_time).not_to_have_attribute("datetime", shown_before, timeout=15000)
    expect(page.get_by_role("button", name="Run again")).to_be_enabled()
    expect(panel.locator('[data-role="verify-notice"]')).to_be_hidden()


def test_notebook7_opens_the_panel_from_the_view_menu(gpu_server, page):
    page.goto(gpu_server.page("notebooks/gpu.ipynb"))
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^View$")).click()
    page.locator(".lm-Menu-item", has_text="Show GPU panel").click()
    panel = page.locator(PANEL)
    expect(panel).to_be_visible()
    expect(panel.locator(".jp-GpuPanel-card")).to_have_count(2)
    gpu1 = gpu_server.api("status?history=0").json()["gpus"][1]
    card = panel.locator(f'[data-gpu-uuid="{gpu1["uuid"]}"]')
    for metric, text in expected_metrics(gpu1).items():
        expect(card.locator(f'[data-metric="{metric}"] .jp-GpuPanel-metricValue')).to_have_text(
            text
        )
    expect(panel.locator(".jp-GpuPanel-check").first).to_be_visible()
    # Notebook 7 has no status bar: the menu is the way in.
    expect(page.locator(STATUS_ITEM)).to_have_count(0)


def test_no_gpu_server_says_so_in_words(server_factory, page):
    server = server_factory(
        "no-gpu",
        {
            "CUDASPAWNER_GPU_BACKEND": "simulated",
            "CUDASPAWNER_SIMULATED_GPUS": str(TWO_GPUS),
            "NVIDIA_VISIBLE_DEVICES": "void",
        },
    )
    status = server.api("status").json()
    assert status["state"] == "no_gpu"
    page.goto(server.page("lab"))
    item = page.locator(STATUS_ITEM)
    expect(item).to_have_text("No GPU", timeout=60000)
    item.click()
    panel = page.locator(PANEL)
    notice = panel.locator('[data-role="status-notice"]')
    expect(notice).to_contain_text(status["message"])
    expect(notice).to_have_attribute("role", "status")
    expect(panel.locator(".jp-GpuPanel-card")).to_have_count(0)
    verify = wait_for_verification(server)
    assert verify["summary"] == "no_gpu"
    expect(panel.locator('[data-role="verify-headline"]')).to_contain_text("No GPU assigned")


def test_missing_server_extension_is_explained_not_blank(server_factory, page):
    server = server_factory(
        "no-extension",
        {},
        server_config={"ServerApp": {"jpserver_extensions": {"nbextension": False}}},
    )
    assert server.api("status").status_code == 404
    page.goto(server.page("lab"))
    item = page.locator(STATUS_ITEM)
    expect(item).to_have_text("GPU: unavailable", timeout=60000)
    item.click()
    notice = page.locator(PANEL).locator('[data-role="status-notice"]')
    expect(notice).to_contain_text("HTTP 404")
    expect(notice).to_contain_text("server extension is not installed")
    # Nothing to verify or re-run without the extension.
    expect(page.get_by_role("button", name="Run again")).to_be_hidden()


def test_lab_panel_shows_the_owners_gpu_hours_and_budget_sentences(gpu_server, page):
    """Issue 26: what the hub's operations service sends is what the panel says."""
    sentence = "Your group vision has used 85.0 of its 100 GPU-hours this month (85%)."
    r = requests.post(
        gpu_server.url + "api/gpu/v1/usage",
        json={"week_hours": 3.456, "month_hours": 12, "warnings": [sentence]},
        headers={"Authorization": f"token {gpu_server.token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    panel = open_lab_panel(page, gpu_server)
    expect(panel.locator('[data-role="usage"]')).to_have_text(
        "Your GPU use: 3.46 GPU-hours this week, 12.00 this month.", timeout=30000
    )
    expect(panel.locator('[data-role="budget"] li')).to_have_text([sentence])


def test_a_server_given_a_mig_slice_shows_the_slice_not_its_gpus_utilisation(
    server_factory, tmp_path, page
):
    """Issue 27: the status bar and the panel show the slice (its memory); NVML reports no
    utilisation per slice, and the card's own is not passed off as the slice's."""
    description = json.loads(TWO_GPUS.read_text())
    description["gpus"][0]["mig"] = [
        {"index": 0, "uuid": "MIG-aaaa", "name": "NVIDIA A100-SXM4-80GB MIG 1g.10gb",
         "memory_used": 2 << 30, "memory_total": 10 << 30},
        {"index": 1, "uuid": "MIG-bbbb", "name": "NVIDIA A100-SXM4-80GB MIG 3g.40gb",
         "memory_used": 0, "memory_total": 40 << 30},
    ]  # fmt: skip
    path = tmp_path / "mig.json"
    path.write_text(json.dumps(description))
    server = server_factory(
        "mig-slice",
        {
            "CUDASPAWNER_GPU_BACKEND": "simulated",
            "CUDASPAWNER_SIMULATED_GPUS": str(path),
            "NVIDIA_VISIBLE_DEVICES": "MIG-aaaa",
        },
    )
    page.goto(server.page("lab"))
    item = page.locator(STATUS_ITEM)
    expect(item).to_have_text("GPU 0 (MIG slice): 2/10 GiB", timeout=60000)
    item.click()
    card = page.locator(PANEL).locator('.jp-GpuPanel-card[data-gpu-uuid="MIG-aaaa"]')
    expect(card.locator(".jp-GpuPanel-cardTitle")).to_have_text(
        "GPU 0: MIG slice NVIDIA A100-SXM4-80GB MIG 1g.10gb"
    )
    expect(card).to_contain_text("not reported per MIG slice")
    expect(card).to_contain_text("Slice of")
    # One card, the slice's; none of the card-wide figures (37% utilisation, 41 °C).
    expect(page.locator(PANEL).locator(".jp-GpuPanel-card")).to_have_count(1)
    expect(card.locator('[data-metric="utilization_gpu"]')).to_have_count(0)
    expect(card.locator('[data-metric="temperature"]')).to_have_count(0)
    expect(card).not_to_contain_text("37%")
