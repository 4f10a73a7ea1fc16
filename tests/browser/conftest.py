"""Fixtures of the browser suite: real `jupyter lab` servers on the simulated GPU backend and
Debian's chromium driven by Playwright (from PyPI; no browser download)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from .jupyter_process import REPO, JupyterServer, build_labextension

_goto = Page.goto
_wait_for_url = Page.wait_for_url


def _network_changed(page: Page, e: PlaywrightError) -> bool:
    """True when Chromium dropped the navigation: ERR_NETWORK_CHANGED in the error, or
    Playwright reporting only that the navigation was "interrupted by another navigation to
    chrome-error://..." (Chromium's error page; seen in CI for the first page of a freshly
    started hub, the error page's code unread). The caller goes again after a second, at
    most twice: an error that stays (a refused connection, a bad certificate) still fails."""
    if "ERR_NETWORK_CHANGED" in str(e) or "chrome-error://" in str(e):
        time.sleep(1)
        return True
    return False


def _goto_again_if_the_network_changed(self: Page, url: str, **kwargs):
    """Page.goto, gone again (at most twice) when Chromium aborted it with
    ERR_NETWORK_CHANGED: Chromium drops a navigation whenever a network interface comes or
    goes, and Docker adds one for every container it starts, the suite's other lanes' and
    the test's own (seen in CI: the sign-up page of the line test, the admin's login page of
    the neighbour test). Any other failure is raised at once."""
    for attempt in range(3):
        try:
            return _goto(self, url, **kwargs)
        except PlaywrightError as e:
            if not _network_changed(self, e) or attempt == 2:
                raise


def _wait_for_url_again_if_the_network_changed(self: Page, url, **kwargs):
    """Page.wait_for_url; when the navigation it waits for was dropped with
    ERR_NETWORK_CHANGED, the page is reloaded (Chromium's error page reloads the address
    that failed) and waited for again, at most twice (seen in CI: the redirect from the
    spawn-pending page to the lab, as the user's own container came up)."""
    for attempt in range(3):
        try:
            return _wait_for_url(self, url, **kwargs)
        except PlaywrightError as e:
            if not _network_changed(self, e) or attempt == 2:
                raise
        try:
            self.reload()
        except PlaywrightError as e:
            if not _network_changed(self, e):
                raise


Page.goto = _goto_again_if_the_network_changed
Page.wait_for_url = _wait_for_url_again_if_the_network_changed

ARTIFACTS = REPO / "test-artifacts" / "browser"
TWO_GPUS = REPO / "tests" / "notebook" / "fixtures" / "two-gpus.json"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# GPU 0's utilisation cycles through these, one per sample, so the status bar must change.
GPU0_UTILISATION = [37, 52, 68, 81]
# Every server this session started, so a failing test can show their logs.
STARTED: list[JupyterServer] = []


# pytest-jupyter's autouse fixtures (loaded for the whole suite) would take Playwright's running
# event loop for their own and close it. These tests run Jupyter in subprocesses, not in-process,
# so those fixtures have nothing to do here.
@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup():
    yield


@pytest.fixture(scope="session")
def labextension() -> None:
    build_labextension()


@pytest.fixture(scope="session")
def moving_two_gpus(tmp_path_factory) -> Path:
    """The notebook engineer's two-GPU description, with GPU 0's utilisation moving."""
    description = json.loads(TWO_GPUS.read_text())
    description["gpus"][0]["utilization_gpu"] = GPU0_UTILISATION
    path = tmp_path_factory.mktemp("gpus") / "two-gpus-moving.json"
    path.write_text(json.dumps(description))
    return path


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory, labextension) -> Iterator:
    """Start servers that all stop (with a kill fallback) at the end of the session."""

    def start(
        name: str,
        env: dict[str, str],
        extra_args: list[str] = (),
        server_config: dict | None = None,
    ) -> JupyterServer:
        server = JupyterServer(
            workdir=tmp_path_factory.mktemp(name),
            env_overrides=env,
            extra_args=list(extra_args),
            server_config=server_config or {},
        )
        STARTED.append(server)
        return server.start()

    yield start
    for server in STARTED:
        server.stop()


@pytest.fixture(scope="session")
def gpu_server(server_factory, moving_two_gpus) -> JupyterServer:
    """Two simulated GPUs; a verification may be re-run at once (no 30 s wait)."""
    server = server_factory(
        "two-gpus",
        {
            "CUDASPAWNER_GPU_BACKEND": "simulated",
            "CUDASPAWNER_SIMULATED_GPUS": str(moving_two_gpus),
        },
        ["--GpuMonitor.verify_min_interval=0"],
    )
    # A notebook for the Notebook 7 test to open.
    (server.workdir / "root" / "gpu.ipynb").write_text(
        json.dumps(
            {
                "cells": [],
                # A kernelspec, or Notebook 7 asks which kernel to use in a dialog.
                "metadata": {
                    "kernelspec": {
                        "name": "python3",
                        "display_name": "Python 3",
                        "language": "python",
                    }
                },
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    return server


@pytest.fixture(scope="session")
def browser() -> Iterator:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("The browser tests need Debian's chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request) -> Iterator:
    """A fresh page; its screenshot is saved to test-artifacts/browser/ whatever the outcome."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    except Exception as e:  # a crashed page must not hide the test's own failure
        print(f"screenshot failed: {e}")
    if errors:
        print("page errors:", *errors, sep="\n  ")
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        for server in STARTED:
            print(f"--- log of the server in {server.workdir} ---\n{server.log_tail()}")
    context.close()


def sign_up_and_log_in(page, hub, name: str, password: str) -> None:
    """A person's way in to the default deployment: sign up on the hub's form in the browser,
    get approved by the admin, log in. The user is an ordinary one (not an admin)."""
    from tests.hubtools import Browser
    from tests.integration.test_security import admin_password, approve, logged_in

    page.goto(hub.url + "hub/signup")
    page.fill("input[name=username]", name)
    page.fill("input[name=signup_password]", password)
    page.fill("input[name=signup_password_confirmation]", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()
    admin = Browser(hub)
    assert logged_in(admin.login("admin", admin_password(hub)))
    approve(admin, name)
    log_in(page, hub, name, password)


def log_in(page, hub, name: str, password: str) -> None:
    """Log in on the hub's own login page, as a person does."""
    page.goto(hub.url + "hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")


def watch(page) -> None:
    """Record, from the page's first request on, what it loads, what fails and what its
    scripts say: `wait_for_lab` prints it when JupyterLab does not come up."""
    seen: list[str] = []
    pending: dict[int, str] = {}
    page.on("console", lambda m: seen.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: seen.append(f"page error: {e}"))
    page.on("request", lambda r: pending.__setitem__(id(r), r.url))
    page.on("requestfinished", lambda r: pending.pop(id(r), None))

    def failed(r) -> None:
        pending.pop(id(r), None)
        seen.append(f"failed {r.url}: {r.failure}")

    page.on("requestfailed", failed)
    page.on("response", lambda r: r.status >= 400 and seen.append(f"{r.status} {r.url}"))
    page.cudaspawner_watch = (seen, pending)


def _what_the_page_saw(page) -> str:
    seen, pending = getattr(page, "cudaspawner_watch", ([], {}))
    try:
        state = page.evaluate(
            "() => [document.readyState, document.title, document.body ? "
            "document.body.innerText.slice(0, 300) : '(no body)']"
        )
    except Exception as e:  # a crashed page: say so
        state = [f"(page not readable: {e})"]
    return "\n  ".join(
        [f"page: {page.url}", f"document: {state}", *seen[-40:]]
        + [f"still loading: {url}" for url in list(pending.values())[-20:]]
    )


def wait_for_lab(page, docker_client, container: str, timeout: float = 180000) -> None:
    """Wait for JupyterLab's shell; on a time-out, say what the page and the server saw
    (console messages, failed and unfinished requests, the document, the container's log).

    A page still blank then is reloaded once, as its user would, and the test goes on only
    if JupyterLab comes up: the reload and what was seen before it are printed either way
    (CI saw a blank Lab twice in many runs, on a loaded machine, with no error anywhere)."""
    if not hasattr(page, "cudaspawner_watch"):
        watch(page)
    try:
        page.locator(".jp-LabShell").wait_for(timeout=timeout)
        return
    except Exception:
        print("JupyterLab did not come up:\n ", _what_the_page_saw(page))
        try:
            print(docker_client.containers.get(container).logs(tail=80).decode(errors="replace"))
        except Exception as e:  # gone already: the failure above is what matters
            print(f"(no container log: {e})")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(ARTIFACTS / f"blank-lab-{container}.png"))
        except Exception as e:
            print(f"screenshot failed: {e}")
    print("Reloading the page once, as its user would.")
    page.reload()
    try:
        page.locator(".jp-LabShell").wait_for(timeout=120000)
    except Exception:
        print("Still no JupyterLab after a reload:\n ", _what_the_page_saw(page))
        raise
    print("JupyterLab came up after one reload.")
