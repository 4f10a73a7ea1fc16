"""The suite's own hubs: each port of one hub is distinct, and a port taken by someone else
between choosing and binding it does not fail a test (a fresh-host run once lost a test to
`--port 50603 --api-port 50603`, EADDRINUSE)."""

from __future__ import annotations

import socket

import pytest

from tests.hubtools import free_ports

pytestmark = [pytest.mark.docker, pytest.mark.hub]


def test_ports_chosen_together_are_distinct_and_free():
    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_hub_whose_proxy_port_is_taken_before_it_starts_starts_on_other_ports(hub_factory):
    hub = hub_factory(start=False)
    taken = int(hub.env["CUDASPAWNER_PROXY_API_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        hub.start()
        assert int(hub.env["CUDASPAWNER_PROXY_API_PORT"]) != taken
        assert hub.api("GET", "users").status_code == 200
        assert "EADDRINUSE" in hub.log() or "Address already in use" in hub.log()


def test_a_port_the_test_chose_itself_is_not_changed_behind_its_back(hub_factory):
    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", 0))  # the hub binds its port on the network's gateway
        squatter.listen()
        port = squatter.getsockname()[1]
        hub = hub_factory(start=False, env={"CUDASPAWNER_HUB_PORT": str(port)})
        with pytest.raises(RuntimeError, match="exited"):
            hub.start()
        assert hub.env["CUDASPAWNER_HUB_PORT"] == str(port)
