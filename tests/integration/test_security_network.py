"""Issue 12, findings 3 and 4, against a real engine: every server has memory and CPU
limits, and a user's container reaches neither another user's container nor the host's
ports, except the hub's API, while the hub and the proxy still reach every server."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import time

import docker
import docker.errors
import pytest

from spawner.environment import default_limits
from spawner.host.deployment import (
    NETWORK_LABEL,
    NetworkProblem,
    ensure_network,
    isolating,
)
from spawner.host.firewall import (
    Owner,
    bridge_name,
    chain_name,
    port_rules,
    process_owner,
    restrict_host_access,
)
from tests.hubtools import TEST_LABEL, TEST_NETWORK, Browser, cmdline_of, container_of
from tests.integration.test_security import admin_password, approve, logged_in, signup

pytestmark = [pytest.mark.docker]

USERS = ["b12ivy", "b12jon"]


def can_connect(container, ip: str, port: int) -> bool:
    """Whether a TCP connection from inside `container` to ip:port succeeds (3 s)."""
    return connect_error(container, ip, port) is None


def connect_error(container, ip: str, port: int) -> str | None:
    """Why a TCP connection from inside `container` to ip:port fails (None: it works)."""
    code, out = container.exec_run(
        [
            "python3",
            "-c",
            "import socket, sys\n"
            f"try: socket.create_connection(({ip!r}, {port}), timeout=3).close()\n"
            "except OSError as e: print(e); sys.exit(1)",
        ]
    )
    return None if code == 0 else out.decode(errors="replace").strip()


def effective_cpus(host_config: dict) -> float:
    """The CPU limit Docker enforces: --cpus (NanoCpus) or quota / period (DockerSpawner)."""
    if host_config.get("NanoCpus"):
        return host_config["NanoCpus"] / 1e9
    period = host_config.get("CpuPeriod") or 100_000
    return (host_config.get("CpuQuota") or 0) / period


def host_can_connect(ip: str, port: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), timeout=2).close()
            return True
        except OSError:
            time.sleep(0.3)
    return False


@pytest.mark.hub
def test_a_users_container_cannot_open_anothers_port_or_the_hosts_while_the_hub_proxies_both(
    hub_factory, docker_client
):
    hub = hub_factory(secure=True)
    hub_factory.volumes.extend(f"cudaspawner-home-{u}" for u in USERS)
    admin = Browser(hub)
    assert logged_in(admin.login("admin", admin_password(hub)))
    browsers = {}
    for name in USERS:
        signup(hub, name, f"{name}-long-password")
        approve(admin, name)
        b = Browser(hub)
        assert logged_in(b.login(name, f"{name}-long-password"))
        assert b.spawn(name).status_code in (201, 202)
        browsers[name] = b
    for name in USERS:
        hub.wait_ready(name)
    ivy, jon = (container_of(docker_client, u) for u in USERS)
    net = docker_client.networks.get(TEST_NETWORK)
    assert isolating(net.attrs)
    gateway = net.attrs["IPAM"]["Config"][0]["Gateway"]
    jon_ip = jon.attrs["NetworkSettings"]["Networks"][TEST_NETWORK]["IPAddress"]

    # Something Jon serves in his container (TensorBoard, a dashboard, http.server).
    jon.exec_run(["python3", "-m", "http.server", "9999"], detach=True)
    assert host_can_connect(jon_ip, 9999), "the host (hub, proxy) reaches Jon's port"
    assert not can_connect(ivy, jon_ip, 9999), "Ivy's container must not reach Jon's port"
    assert not can_connect(ivy, jon_ip, 8888), "nor Jon's notebook server behind the proxy"

    # The host: the hub's API port yes, any other port the host listens on there, no.
    hub_port = int(hub.env["CUDASPAWNER_HUB_PORT"])
    assert can_connect(ivy, gateway, hub_port)
    with socket.create_server((gateway, 0)) as other:
        assert not can_connect(ivy, gateway, other.getsockname()[1])
    # Nor a cloud's metadata service, which hands out the machine's credentials: refused
    # at once by the host's firewall (without the rule: a timeout here, a reply on a cloud).
    error = connect_error(ivy, "169.254.169.254", 80)
    assert error is not None and "refused" in error.lower(), error

    # Meanwhile the hub still proxies both servers to their owners.
    # (Opening the page logs in to the server by OAuth first, as a browser does.)
    for name, b in browsers.items():
        assert b.get(f"user/{name}/lab").status_code == 200, name
        r = b.get(f"user/{name}/api/status")
        assert r.status_code == 200, (name, r.status_code)

    # Every server has the site's default limits (no profile set any).
    mem, cpus = default_limits(
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), os.cpu_count() or 1
    )
    for c in (ivy, jon):
        c.reload()
        assert c.attrs["HostConfig"]["Memory"] == int(mem.rstrip("G")) * 1024**3
        assert effective_cpus(c.attrs["HostConfig"]) == cpus


@pytest.mark.hub
def test_site_limits_come_from_the_environment_and_a_bad_value_stops_the_hub_with_a_sentence(
    hub_factory, docker_client
):
    hub = hub_factory(env={"CUDASPAWNER_MEM_LIMIT": "700M", "CUDASPAWNER_CPU_LIMIT": "0.5"})
    b = Browser(hub)
    assert b.login("b12kim", hub.user_password).status_code == 302
    assert b.spawn("b12kim").status_code in (201, 202)
    hub_factory.volumes.append("cudaspawner-home-b12kim")
    hub.wait_ready("b12kim")
    host = container_of(docker_client, "b12kim").attrs["HostConfig"]
    assert host["Memory"] == 700 * 1024**2 and effective_cpus(host) == 0.5

    bad = hub_factory(env={"CUDASPAWNER_CPU_LIMIT": "lots"}, start=False)
    with pytest.raises(RuntimeError) as e:
        bad.start()
    assert "CUDASPAWNER_CPU_LIMIT='lots' must be a number of CPUs" in str(e.value)
    assert "Traceback" not in str(e.value)


# --- the network itself: what ensure_network does with what it finds ---------------------------
@pytest.fixture
def scratch_networks(docker_client):
    """Unique network names for one test; whatever was made under them is removed after."""
    names: list[str] = []

    def name() -> str:
        names.append(f"cudaspawner-b12-{secrets.token_hex(3)}")
        return names[-1]

    yield name
    for n in names:
        for c in docker_client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={n}"}):
            c.remove(force=True)
        try:
            net = docker_client.networks.get(n)
        except docker.errors.NotFound:
            continue
        chain = chain_name(bridge_name(net.attrs))
        subprocess.run(
            ["iptables", "-w", "-D", "INPUT", "-i", bridge_name(net.attrs), "-j", chain],
            capture_output=True,
            check=False,
        )
        subprocess.run(
            ["iptables", "-w", "-D", "DOCKER-USER", "-i", bridge_name(net.attrs), "-d"]
            + ["169.254.0.0/16", "-j", "REJECT"],
            capture_output=True,
            check=False,
        )
        subprocess.run(["iptables", "-w", "-F", chain], capture_output=True, check=False)
        subprocess.run(["iptables", "-w", "-X", chain], capture_output=True, check=False)
        net.remove()


def test_a_new_network_is_isolating_and_the_host_firewall_lets_only_the_hub_port_in(
    docker_client, scratch_networks
):
    name = scratch_networks()
    ensure_network(docker_client, name)
    net = docker_client.networks.get(name)
    assert isolating(net.attrs) and NETWORK_LABEL in net.attrs["Labels"]
    assert restrict_host_access(docker_client, name, [8081]) is None
    assert restrict_host_access(docker_client, name, [8081]) is None  # idempotent
    rules = subprocess.run(
        ["iptables", "-w", "-S", chain_name(bridge_name(net.attrs))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert sum("--dport 8081" in r for r in rules) == 1
    assert rules[-1].endswith("-j REJECT --reject-with icmp-port-unreachable")


def _accepted_ports(bridge: str) -> list[int]:
    """The TCP ports the bridge's chain opens to containers (DNS aside), one per rule."""
    listing = subprocess.run(
        ["iptables", "-w", "-S", chain_name(bridge)], capture_output=True, text=True
    ).stdout
    return [int(p) for p in re.findall(r"-p tcp .*--dport (\d+) .*-j ACCEPT", listing) if p != "53"]


def _host_accepts(bridge: str, port: int) -> bool:
    return port in _accepted_ports(bridge)


@pytest.mark.hub
def test_a_hub_closes_its_port_to_containers_when_it_exits_and_the_next_hub_closes_a_killed_ones(
    hub_factory, docker_client
):
    # Started as scripts/up.sh starts it (SIGINT ignored), so that its exit, and the
    # managed services it stops on the way, are those of a deployed hub.
    hub = hub_factory(start=False)
    hub.start(sigint_ignored=True)
    port = int(hub.env["CUDASPAWNER_HUB_PORT"])
    bridge = bridge_name(docker_client.networks.get(TEST_NETWORK).attrs)
    assert _accepted_ports(bridge).count(port) == 1
    # A second hub started on the same port by mistake fails; the running hub keeps its rule.
    twin = hub_factory(env={"CUDASPAWNER_HUB_PORT": str(port)}, start=False, name="twin")
    with pytest.raises(RuntimeError, match="exited"):
        twin.start()
    assert _accepted_ports(bridge).count(port) == 1
    # Stopped, the hub closes its port: whatever listens there next stays out of reach.
    # (Hub.stop waits 15 s for the exit before it kills the hub, which then cannot close it.)
    hub.stop()
    assert hub.proc.returncode == 0, "the hub exited on SIGTERM by itself"
    assert not _host_accepts(bridge, port)

    # Killed outright, a hub cannot close its port; the next hub to start on the network does.
    killed = hub_factory(name="killed")
    killed_port = int(killed.env["CUDASPAWNER_HUB_PORT"])
    services = {
        pid: cmd
        for pid, cmd in killed.kill().items()
        if "spawner.ssh" in cmd or "spawner.services" in cmd
    }
    assert _host_accepts(bridge, killed_port)
    hub_factory(name="next")
    assert not _host_accepts(bridge, killed_port)
    # Our managed services went with the killed hub: the SSH gateway no longer holds its
    # port against the hub's restart, nor serves with the dead hub's token.
    assert len(services) == 2, services
    assert not [cmd for pid, cmd in services.items() if cmdline_of(pid) == cmd]


def test_the_host_keeps_the_ports_of_running_hubs_and_closes_those_of_gone_ones(
    docker_client, scratch_networks
):
    """The sweep every hub runs at start, against real iptables and real processes."""
    name = scratch_networks()
    ensure_network(docker_client, name)
    bridge = bridge_name(docker_client.networks.get(name).attrs)
    running = subprocess.Popen(["sleep", "600"])
    gone = subprocess.Popen(["sleep", "600"])
    try:
        owners = {p.pid: process_owner(p.pid) for p in (running, gone)}
        gone.kill()
        gone.wait()
        with socket.create_server(("127.0.0.1", 0)) as served:
            in_use = served.getsockname()[1]
            rules = [
                *port_rules(bridge, [41001], owners[running.pid]),
                *port_rules(bridge, [41002], owners[gone.pid]),
                *port_rules(bridge, [41003], Owner("1", 1, "1")),  # another PID namespace
                *port_rules(bridge, [in_use, 41004], None),  # an older version's, no owner
            ]
            subprocess.run(["iptables", "-w", "-N", chain_name(bridge)], capture_output=True)
            for rule in rules:
                subprocess.run(["iptables", "-w", "-A", *rule], check=True)
            assert restrict_host_access(docker_client, name, [41005]) is None
            kept = sorted(_accepted_ports(bridge))
        assert kept == sorted([41001, 41003, in_use, 41005]), "41002 and 41004 had no hub"
    finally:
        running.kill()
        running.wait()


def test_an_old_empty_network_of_ours_is_recreated_isolating(docker_client, scratch_networks):
    name = scratch_networks()
    docker_client.networks.create(name, driver="bridge", labels={NETWORK_LABEL: "1"})
    ensure_network(docker_client, name)
    assert isolating(docker_client.networks.get(name).attrs)


def test_an_old_network_in_use_stops_the_hub_with_the_containers_to_stop(
    docker_client, scratch_networks
):
    name = scratch_networks()
    net = docker_client.networks.create(name, driver="bridge", labels={NETWORK_LABEL: "1"})
    c = docker_client.containers.run(
        "cudaspawner/debian:bookworm",
        ["sleep", "60"],
        detach=True,
        network=name,
        labels={TEST_LABEL: name},
        name=f"{name}-user",
    )
    with pytest.raises(NetworkProblem) as e:
        ensure_network(docker_client, name)
    assert f"{name}-user" in str(e.value) and "Stop those servers" in str(e.value)
    net.reload()
    assert net.id == docker_client.networks.get(name).id  # untouched
    c.remove(force=True)


def test_a_network_we_did_not_create_is_never_touched(docker_client, scratch_networks):
    name = scratch_networks()
    foreign = docker_client.networks.create(name, driver="bridge")
    with pytest.raises(NetworkProblem) as e:
        ensure_network(docker_client, name)
    assert "not created by cudaspawner" in str(e.value) and "CUDASPAWNER_NETWORK" in str(e.value)
    assert docker_client.networks.get(name).id == foreign.id
