"""Issue 23: jupyterhub-idle-culler really culls in the default deployment (internal TLS), and
no token issued during the run lands in the hub's log."""

from __future__ import annotations

import time

import pytest

from tests.hubtools import Browser
from tests.integration.test_security import admin_password, approve, logged_in, signup

pytestmark = [pytest.mark.docker, pytest.mark.hub]


def test_the_culler_stops_an_idle_server_over_internal_tls_and_logs_no_token(hub_factory):
    hub = hub_factory(secure=True, env={"CUDASPAWNER_IDLE_TIMEOUT": "12"})
    admin = Browser(hub)
    assert logged_in(admin.login("admin", admin_password(hub)))
    signup(hub, "culled", "culled-long-passphrase")
    approve(admin, "culled")
    user = Browser(hub)
    assert logged_in(user.login("culled", "culled-long-passphrase"))
    minted = user.post("hub/api/users/culled/tokens", json={"note": "script"})
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]

    assert user.spawn("culled").status_code in (201, 202)
    hub.wait_ready("culled")
    started = time.monotonic()
    # Nobody uses it: the culler (every 6 s here) stops it once 12 s have passed idle.
    hub.wait_stopped("culled", timeout=90)
    assert time.monotonic() - started >= 5
    log = hub.log()
    assert "Culling server culled" in log, log[-3000:]
    assert "CERTIFICATE_VERIFY_FAILED" not in log
    # No secret in the log: the user's token, the test's admin token, the services' tokens.
    for secret in (token, hub.admin_token):
        assert secret not in log
