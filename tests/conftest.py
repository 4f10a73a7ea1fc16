"""Fixtures shared by the suite: a real Docker engine and real JupyterHub processes."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# scripts/test.sh runs the suite as lanes side by side; together they are every test.
LANES = {
    "pure": "no Docker engine, hub, browser or GPU",
    "swarm": "the Swarm tests: engines of their own",
    "beside": "this host's engine, with hubs that start no GPU container (so they may run "
    "beside the GPU tests; test.sh gives them a container prefix of their own)",
    "engine": "everything else: this host's engine, hubs with simulated GPUs, the browser",
}
# Files of the "beside" lane: their hubs hold no GPU, so the GPU tests' hubs, which count
# every GPU the engine's other containers hold as taken, never see them.
BESIDE = {
    "tests/integration/test_foundation.py",
    "tests/integration/test_security_network.py",
    "tests/integration/test_security.py",
    "tests/integration/test_security_login.py",
    "tests/integration/test_user_origins_hub.py",
    "tests/integration/test_hub_ports.py",
    "tests/integration/test_profiles_hub.py",
    "tests/integration/test_image_compat_hub.py",
    "tests/integration/test_image.py",
    "tests/integration/test_cuda_image.py",
    "tests/neighbour/test_users_seat.py",
    "tests/accounting/test_usage_store.py",
    "tests/ops/test_culler_hub.py",
    "tests/setup/test_setup_scripts.py",
    "tests/browser/test_default_deployment.py",
    "tests/browser/test_ssh_keys_page.py",
    "tests/browser/test_gpu_panel.py",
    "tests/browser/test_journey.py",
    "tests/browser/test_frontend_unit.py",
}
ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption(
        "--lane",
        choices=sorted(LANES),
        help="run one lane of the suite: "
        + "; ".join(f"{name}: {meaning}" for name, meaning in LANES.items()),
    )


def lane_of(item) -> str:
    """The lane a test runs in (see LANES)."""
    path = Path(str(item.fspath)).resolve().relative_to(ROOT)
    needs = {m.name for m in item.iter_markers()} & {"docker", "hub", "gpu", "browser", "postgres"}
    if not needs and "browser" not in path.parts:
        return "pure"
    if "swarm" in path.parts:
        return "swarm"
    return "beside" if path.as_posix() in BESIDE else "engine"


def pytest_collection_modifyitems(config, items):
    lane = config.getoption("--lane")
    if not lane:
        return
    dropped = [item for item in items if lane_of(item) != lane]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if lane_of(item) == lane]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item so fixtures can tell whether the test failed.
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


CUDA_IMAGE = "cudaspawner/pytorch-cuda:2.9-cuda12.8"  # the project's CUDA image


@pytest.fixture(scope="session")
def cuda_image(docker_client):
    """The project's CUDA image; a test that needs it says so where it is not built."""
    try:
        return docker_client.images.get(CUDA_IMAGE)
    except Exception:
        pytest.fail(f"{CUDA_IMAGE} is not built: run images/build.sh pytorch-cuda")


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
