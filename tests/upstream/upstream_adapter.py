"""pytest plugin: DockerSpawner 14.0.0's own test suite, run against the spawner under test.

Our own stand-in for the suite's ``conftest.py``, which its sdist does not ship. It gives the
suite the fixtures it asks for (a MockHub reachable from containers, ``named_servers``,
``dockerspawner_configured_app``, ``docker``, ``username``) and, for ``--upstream-spawner
cuda-docker`` (the default), puts CUDADockerSpawner wherever the suite names DockerSpawner:
as the hub's spawner class and as the class the tests construct directly.

Differences from upstream's conftest, each for the shared engine: containers and volumes get
a prefix of their own and only those are cleaned up or dumped on failure; tests listed in
``deselected.txt`` are deselected with their reason. Loaded by ``run.sh`` with ``-p``.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from textwrap import indent
from unittest import mock

import docker
import dockerspawner
import pytest
import pytest_asyncio
from dockerspawner import DockerSpawner
from jupyterhub.tests.conftest import app as jupyterhub_app  # noqa: F401  (fixture)
from jupyterhub.tests.conftest import (
    ssl_tmpdir,  # noqa: F401  (fixture jupyterhub_app uses)
    user,  # noqa: F401  (fixture)
)
from jupyterhub.tests.mocking import MockHub

# Everything the suite creates on the engine starts with this, and only that is cleaned up.
PREFIX = "cudaspawner-upstream"
DESELECTED = Path(__file__).with_name("deselected.txt")
SPAWNER_CLASS = pytest.StashKey[type]()
UNUSED_ENTRIES = pytest.StashKey[list]()
DESELECTED_REASONS = pytest.StashKey[dict]()


# --- which spawner ----------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--upstream-spawner",
        default="cuda-docker",
        help="jupyterhub.spawners entry point the suite runs against: cuda-docker "
        "(CUDADockerSpawner, the default) or docker (DockerSpawner itself).",
    )


def load_spawner(entry_point: str) -> type:
    """The spawner class an admin gets by writing ``c.JupyterHub.spawner_class = entry_point``."""
    found = entry_points(group="jupyterhub.spawners", name=entry_point)
    if not found:
        raise pytest.UsageError(
            f"No spawner is installed under the entry point {entry_point!r} "
            "(jupyterhub.spawners); is the project installed in this environment?"
        )
    cls = next(iter(found)).load()
    if not issubclass(cls, DockerSpawner):
        raise pytest.UsageError(f"{entry_point!r} is {cls.__name__}, not a DockerSpawner")
    return cls


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SPAWNER_CLASS] = load_spawner(config.getoption("upstream_spawner"))
    # The Hub must be reachable from containers: listen everywhere and tell the containers
    # to call the bridge's gateway. Class-level, because jupyterhub's `app` fixture has
    # already built and started its MockHub by the time our fixtures see it.
    MockHub.hub_ip = "0.0.0.0"
    MockHub.hub_connect_ip = os.environ.get("HUB_CONNECT_IP") or bridge_gateway()


def pytest_report_header(config: pytest.Config) -> str:
    cls = config.stash[SPAWNER_CLASS]
    return (
        f"spawner under test: {cls.__module__}.{cls.__qualname__} "
        f"(dockerspawner {dockerspawner.__version__}); hub reachable at {MockHub.hub_connect_ip}"
    )


def bridge_gateway() -> str:
    """The address containers on Docker's default bridge reach the host at."""
    try:
        net = docker.from_env().networks.get("bridge")
        config = ((net.attrs.get("IPAM") or {}).get("Config") or [{}])[0]
        if config.get("Gateway"):
            return config["Gateway"].split("/")[0]
        # A fresh engine may leave the gateway out of the default bridge's IPAM (20.10 on a
        # bare bookworm does): it is the address of the bridge's own interface.
        options = net.attrs.get("Options") or {}
        return interface_address(options.get("com.docker.network.bridge.name") or "docker0")
    except Exception as e:  # any engine trouble ends the run with one clear sentence
        raise pytest.UsageError(
            f"Cannot find the gateway of Docker's bridge network ({e}); set HUB_CONNECT_IP "
            "to an address of this host that containers can reach."
        ) from None


# --- deselection ------------------------------------------------------------------------
@dataclass(frozen=True)
class Deselection:
    """One line of deselected.txt: which spawner, which test, and why it is not run."""

    spawner: str  # an entry point name, or "*" for every spawner
    test: str  # "file.py::test_name" (all its parameters) or "file.py::test_name[param]"
    reason: str

    def matches(self, item: pytest.Item, spawner: str) -> bool:
        if self.spawner not in ("*", spawner):
            return False
        name = getattr(item, "originalname", item.name)
        return self.test in (f"{item.path.name}::{item.name}", f"{item.path.name}::{name}")


def parse_deselections(text: str) -> list[Deselection]:
    """Parse ``<spawner|*> <file.py::test> <reason...>`` lines; # starts a comment line."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or "::" not in parts[1]:
            raise pytest.UsageError(
                f"{DESELECTED.name} line {number}: expected '<spawner|*> <file.py::test> "
                f"<reason>', got {line!r}"
            )
        entries.append(Deselection(*parts))
    return entries


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    spawner = config.getoption("upstream_spawner")
    entries = parse_deselections(DESELECTED.read_text())
    used: set[Deselection] = set()
    kept, dropped, reasons = [], [], {}
    for item in items:
        entry = next((e for e in entries if e.matches(item, spawner)), None)
        if entry is None:
            kept.append(item)
        else:
            used.add(entry)
            dropped.append(item)
            reasons[item.nodeid.rsplit("/", 1)[-1]] = entry.reason
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    config.stash[DESELECTED_REASONS] = reasons
    # A line that matches nothing is stale (renamed test, new suite version): say so.
    config.stash[UNUSED_ENTRIES] = [
        e for e in entries if e not in used and e.spawner in ("*", spawner)
    ]

    # The Hub fixture lives for a module, so its tests must share the module's event loop.
    module_loop = pytest.mark.asyncio(loop_scope="module")
    for item in items:
        if pytest_asyncio.is_async_test(item):
            marker = item.get_closest_marker("asyncio")
            if marker is None or not marker.kwargs:
                item.add_marker(module_loop, append=False)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    reasons = config.stash.get(DESELECTED_REASONS, {})
    if reasons:
        terminalreporter.section("deselected on purpose (tests/upstream/deselected.txt)")
        for test, reason in reasons.items():
            terminalreporter.line(f"{test}: {reason}")
    for entry in config.stash.get(UNUSED_ENTRIES, []):
        terminalreporter.line(
            f"WARNING: deselected.txt names {entry.test}, which this suite does not have",
            yellow=True,
        )


# --- fixtures the suite asks for --------------------------------------------------------
@pytest.fixture(autouse=True)
def spawner_under_test(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    """Make the test module's ``DockerSpawner`` name the spawner under test."""
    cls = request.config.stash[SPAWNER_CLASS]
    module = request.module
    if cls is not DockerSpawner and getattr(module, "DockerSpawner", None) is DockerSpawner:
        monkeypatch.setattr(module, "DockerSpawner", cls)
    return cls


@pytest.fixture
def app(jupyterhub_app):  # noqa: F811  (wraps the fixture of that name)
    """jupyterhub's MockHub, with container names (and volumes) that are ours alone."""
    jupyterhub_app.config.DockerSpawner.prefix = PREFIX
    # On a busy 2-core machine a first single-user start can take longer than JupyterHub's
    # 30 s / 60 s defaults (seen: vanilla DockerSpawner failing test_start_stop at load 13).
    # The suite tests function, not speed.
    jupyterhub_app.config.Spawner.http_timeout = 120
    jupyterhub_app.config.Spawner.start_timeout = 180
    # CUDADockerSpawner keeps each user's home in a named volume: name it as ours too.
    jupyterhub_app.config.CUDADockerSpawner.home_volume_name = f"{PREFIX}-home-{{username}}"
    return jupyterhub_app


@pytest.fixture
def named_servers(app):
    with mock.patch.dict(
        app.tornado_settings, {"allow_named_servers": True, "named_server_limit_per_user": 2}
    ):
        yield


@pytest.fixture
def dockerspawner_configured_app(app, named_servers, spawner_under_test):
    """The Hub, spawning with the spawner under test."""
    # A stop slower than JupyterHub's 10 s answers 202 and the suite's test_start_stop then
    # polls for a server that may be gone already (KeyError): seen under load, for either
    # spawner. Waiting longer for a slow stop keeps the test about function, not speed.
    settings = {"spawner_class": spawner_under_test, "slow_stop_timeout": 60}
    with mock.patch.dict(app.tornado_settings, settings):
        yield app


_username_counter = 0


@pytest.fixture
def username() -> str:
    global _username_counter
    _username_counter += 1
    return f"test-user-{_username_counter}"


@pytest.fixture(autouse=True, scope="session")
def docker_client():
    """The engine, and afterwards removal of the containers and volumes this run made."""
    client = docker.from_env()
    try:
        yield client
    finally:
        for c in client.containers.list(all=True, filters={"name": PREFIX}):
            if c.name.startswith(PREFIX):
                c.remove(force=True)
        for v in client.volumes.list(filters={"name": PREFIX}):
            if v.name.startswith(PREFIX):
                v.remove(force=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test's report carries the state and logs of this run's containers."""
    report = yield
    if report.when == "call" and report.failed:
        report.sections.append(("our containers", describe_our_containers()))
    return report


def describe_our_containers() -> str:
    """State, image, command and last log lines of this run's containers (never anyone else's)."""
    try:
        client = docker.from_env()
        ours = [
            c
            for c in client.containers.list(all=True, filters={"name": PREFIX})
            if c.name.startswith(PREFIX)
        ]
        parts = []
        for c in ours:
            facts = {
                "State": c.attrs["State"],
                "Image": c.attrs["Config"]["Image"],
                "Cmd": c.attrs["Config"]["Cmd"],
                "User": c.attrs["Config"]["User"],
            }
            logs = indent(c.logs(tail=60).decode("utf8", "replace"), "  ")
            parts.append(f"Container {c.name}: {json.dumps(facts, indent=2)}\n{logs}")
        return "\n".join(parts) or "(no containers of this run)"
    except docker.errors.DockerException as e:
        return f"(could not read the containers: {e})"


def interface_address(name: str) -> str:
    """The IPv4 address of a network interface (Linux SIOCGIFADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
    return socket.inet_ntoa(packed[20:24])
