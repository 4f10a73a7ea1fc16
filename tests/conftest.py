"""Fixtures shared by the suite: a real Docker engine and real JupyterHub processes."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item so fixtures can tell whether the test failed.
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # the integration suite needs the engine; say so plainly
        pytest.fail(f"These tests need a running Docker engine (scripts/test.sh starts one): {e}")
    return client


@pytest.fixture
def hub_factory(tmp_path, docker_client, request):
    """Start real hubs running the default deployment plus per-test config."""
    from spawner.host.deployment import ensure_network
    from tests.hubtools import TEST_NETWORK, dump_docker_state, make_hub, remove_hub_leftovers

    ensure_network(docker_client, TEST_NETWORK)

    hubs = []
    volumes: list[str] = []

    def start(
        extra_config: str = "",
        env: dict | None = None,
        start: bool = True,
        name: str = "",
        secure: bool = False,
    ):
        hub = make_hub(tmp_path / (name or f"h{len(hubs)}"), extra_config, env, secure)
        hubs.append(hub)
        if start:
            hub.start()
        return hub

    start.volumes = volumes  # tests register user volumes to delete
    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for hub in hubs:
        if failed:
            print(dump_docker_state(docker_client, hub))
        hub.stop()
        remove_hub_leftovers(docker_client, hub, volumes)
