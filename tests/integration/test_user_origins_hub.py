"""Issue 22 on the real hub: a site's own certificate must cover the users' names, and a site
that turns per-user origins off is told at start what that exposes."""

from __future__ import annotations

import pytest

from spawner.host.deployment import ensure_self_signed_cert
from tests.hubtools import Browser

pytestmark = [pytest.mark.docker, pytest.mark.hub]


def test_a_sites_certificate_without_the_wildcard_stops_the_hub_with_a_sentence(
    hub_factory, tmp_path
):
    own = tmp_path / "site-cert"
    own.mkdir()
    cert, key, _ = ensure_self_signed_cert(own, ["hub.localhost"], ["127.0.0.1"])
    hub = hub_factory(
        secure=True,
        env={"CUDASPAWNER_SSL_CERT": str(cert), "CUDASPAWNER_SSL_KEY": str(key)},
        start=False,
    )
    with pytest.raises(RuntimeError) as stopped:
        hub.start()
    said = str(stopped.value)
    assert "does not cover hub.localhost and *.hub.localhost" in said
    assert "Traceback" not in said


def test_turning_per_user_origins_off_warns_in_one_sentence_and_still_serves(hub_factory):
    hub = hub_factory(secure=True, env={"CUDASPAWNER_USER_SUBDOMAINS": "0"})
    warning = [line for line in hub.log().splitlines() if "CUDASPAWNER_USER_SUBDOMAINS=off" in line]
    assert len(warning) == 1, hub.log()[-3000:]
    assert "can act as them on the hub" in warning[0]
    assert Browser(hub).get("hub/login").status_code == 200  # on the hub's address, as before
