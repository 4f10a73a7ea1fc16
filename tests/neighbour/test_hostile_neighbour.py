"""Issue 22: a hostile neighbour on the real default deployment cannot become anyone else.

`nbmal`, an ordinary signed-up user, runs their own extension in their own server
(conftest.py). Each test is one thing such a user tries: a page that acts on the hub as
whoever opens it; keeping the credentials the hub's services send to their server; and GPU
figures made to break the admin page or dodge the idle-GPU reclaim.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from tests.browser.conftest import log_in

from .conftest import HONEST, MALLORY, figures, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.hub]


def _tokens_of(hub, user: str) -> set[str]:
    r = hub.api("GET", f"users/{user}/tokens")
    assert r.status_code == 200, r.text[:300]
    return {t["id"] for t in r.json()["api_tokens"]}


def _hub_state(hub) -> dict:
    users = hub.api("GET", "users").json()
    return {
        u["name"]: (u["admin"], sorted(u["servers"]), sorted(u["groups"]), u["roles"])
        for u in (users["items"] if isinstance(users, dict) else users)
    }


@pytest.mark.browser
def test_an_admin_who_opens_a_users_page_gets_no_token_minted_and_nothing_changes(
    deployment, browser
):
    from tests.integration.test_security import admin_password

    hub = deployment.hub
    tokens_before = _tokens_of(hub, "admin")
    state_before = _hub_state(hub)
    context = browser.new_context(ignore_https_errors=True)
    started = time.time()
    page = context.new_page()
    page.set_default_timeout(60000)
    try:
        log_in(page, hub, "admin", admin_password(hub))
        page.wait_for_url(re.compile(r"/hub/(spawn|home)"))
        # The link the neighbour sent: a page their own server serves.
        page.goto(hub.server_url(MALLORY, "hostile/page"))
        page.locator("#state", has_text="done").wait_for()
        # And the hub's login on the neighbour's name: it goes to the hub's own name.
        page.goto(hub.server_url(MALLORY).split("/user/")[0] + "/hub/login")
        assert page.url.startswith(hub.url), page.url
    finally:
        context.close()

    # The admin's browser never gave the neighbour's server its hub login (host-only).
    # (Python's cookie jar, which the fixture used before, would: it is no browser.)
    seen = [h for h in deployment.read_home(MALLORY, "headers.jsonl") if h["at"] >= started]
    assert [h for h in seen if h["path"].endswith("hostile/loot")], seen
    assert not [h for h in seen if "hub-login" in h["cookie"]], seen
    loot = deployment.read_home(MALLORY, "loot.jsonl")
    assert loot, "the page ran its script and reported back"
    tries = loot[-1]["tries"]
    assert len(tries) >= 6, tries  # every attempt was made, on both origins
    for t in tries:
        assert t.get("status") != 201 and '"token"' not in t.get("body", ""), t
        assert "admin" not in t.get("body", "") or t.get("status") in (302, 403, 404), t
    assert _tokens_of(hub, "admin") == tokens_before
    assert _hub_state(hub) == state_before


def test_the_credentials_sent_to_a_users_server_reach_nothing_but_that_server(deployment):
    hub = deployment.hub
    deployment.start_server(HONEST, "idle")
    try:
        # Idle figures for a while: the service warns (a POST), then busy again (a DELETE).
        deployment.write_home(MALLORY, "~/.hostile/answer", figures(0))
        wait_for("a warning", lambda: deployment.read_home(MALLORY, "warnings.jsonl"), 30, hub)
        deployment.write_home(MALLORY, "~/.hostile/answer", figures(90))
        wait_for(
            "several looks with a token",
            lambda: (
                len(
                    [
                        h
                        for h in deployment.read_home(MALLORY, "headers.jsonl")
                        if h["authorization"]
                    ]
                )
                >= 5
            ),  # fmt: skip
            30,
            hub,
        )
    finally:
        deployment.stop_server(HONEST)
    deployment.start_server(HONEST, "idle")  # a server to try to reach
    try:
        seen = deployment.read_home(MALLORY, "headers.jsonl")
        tokens = {h["authorization"].split(" ", 1)[-1] for h in seen if h["authorization"]}
        assert tokens, seen
        assert not [h for h in seen if h["authorization"] and h["cookie"]], seen
        verify = hub.verify
        for token in tokens:
            auth = {"Authorization": f"token {token}"}

            def call(method: str, url: str, auth=auth) -> requests.Response:
                return requests.request(
                    method, url, headers=auth, verify=verify, timeout=30, allow_redirects=False
                )

            me = call("GET", hub.url + "hub/api/user")
            if me.status_code == 403:  # revoked or expired already: worth nothing at all
                continue
            assert me.json()["name"] == MALLORY, me.json()
            # This one server, and reading the owner's own name and groups: nothing more.
            for scope in me.json()["scopes"]:
                assert scope == f"access:servers!server={MALLORY}/" or (
                    scope.startswith("read:users:") and scope.endswith(f"!user={MALLORY}")
                ), me.json()["scopes"]
            assert call("GET", hub.url + "hub/api/users").status_code == 403
            assert call("GET", hub.url + f"hub/api/users/{HONEST}").status_code in (403, 404)
            assert call("DELETE", hub.url + f"hub/api/users/{HONEST}/server").status_code in (
                403,
                404,
            )
            theirs = call("GET", hub.server_url(HONEST, "api/gpu/v1/status"))
            assert theirs.status_code in (302, 403), theirs.status_code
            if theirs.status_code == 302:
                assert "oauth2/authorize" in theirs.headers["Location"]
        assert hub.api("GET", f"users/{HONEST}").json()["servers"][""]["ready"]
    finally:
        deployment.stop_server(HONEST)


HOSTILE_ANSWERS = {
    "strings": json.dumps(
        {"state": "ok", "gpus": [{"utilization_gpu": "busy", "memory_used": "lots"}]}
    ).encode(),
    "nan": b'{"state": "ok", "gpus": [{"utilization_gpu": NaN, "memory_total": Infinity}]}',
    "negative and huge": json.dumps(
        {"state": "ok", "gpus": [{"utilization_gpu": -50, "memory_used": 10**30}]}
    ).encode(),
    "overflow": b'{"state": "ok", "gpus": [{"utilization_gpu": 1e999}]}',
    "nested junk": json.dumps(
        {"state": "ok", "gpus": [[1, 2, 3], {"utilization_gpu": [90]}], "reclaim": "x"}
    ).encode(),
}


def test_hostile_figures_leave_the_admin_page_and_everyone_elses_reclaim_working(deployment):
    hub, admin = deployment.hub, deployment.admin

    def looks() -> int:
        seen = deployment.read_home(MALLORY, "headers.jsonl")
        return len([h for h in seen if h["path"].endswith("/status") and h["authorization"]])

    def admin_page() -> str:
        r = admin.get("services/gpu-admin/")
        assert r.status_code == 200, r.text[:500]
        return r.text

    deployment.start_server(HONEST, "idle")
    started = time.time()
    answers = list(HOSTILE_ANSWERS.items())
    for label, body in answers:
        deployment.write_home(MALLORY, "~/.hostile/answer", body)
        seen = looks()
        wait_for(f"two looks at {label!r}", lambda seen=seen: looks() >= seen + 2, 30, hub)
        text = admin_page()
        assert MALLORY in text and "unreadable" in text, (label, text[-2000:])
    deployment.answer_big(MALLORY, 10)
    seen = looks()
    wait_for("two looks at 10 MB", lambda: looks() >= seen + 2, 60, hub)
    assert "unreadable" in admin_page()

    # Meanwhile the honest idle server was warned and stopped, as if nobody were hostile.
    hub.wait_stopped(HONEST, timeout=60)
    wait_for("the reclaim's log line", lambda: f"Idle GPUs: stopped {HONEST}" in hub.log(), 20, hub)
    # Garbage decided nothing for the hostile server: never warned, still running.
    assert not [w for w in deployment.read_home(MALLORY, "warnings.jsonl") if w["at"] > started]
    assert hub.api("GET", f"users/{MALLORY}").json()["servers"][""]["ready"]

    # A "keep" pressed ten years from now keeps nothing: idle is idle, and it is reclaimed.
    deployment.write_home(MALLORY, "~/.hostile/answer", figures(0, kept_at=time.time() + 3e8))
    hub.wait_stopped(MALLORY, timeout=90)
    assert "Traceback" not in hub.log().split("Idle GPUs: stopped")[-1]
