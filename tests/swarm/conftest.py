"""Swarm fixtures: engines of their own (never the shared test engine), torn down after."""

from __future__ import annotations

import atexit
import json
import time

import docker
import pytest

from tests.swarm.swarmnode import SwarmNode, load_image

IMAGE = "cudaspawner/cpu:latest"
NETWORK = "cudaswarm-test"
ONE_NODE_GPUS = ("GPU-5a000001", "GPU-5a000002", "GPU-5a000003", "GPU-5a000004")


def simulated_description(gpus, name: str) -> dict:
    """The node's GPUs for the image's simulated backend (NVIDIA_VISIBLE_DEVICES narrows it)."""
    return {
        "driver_version": "550.54.15",
        "cuda_driver_version": "12.4",
        "gpus": [{"uuid": g, "name": name, "utilization_gpu": 10} for g in gpus],
    }


def wait_task_running(
    client: docker.DockerClient, service: str, count: int = 1, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = client.api.tasks(filters={"service": service})
        if sum(t["Status"]["State"] == "running" for t in tasks) >= count:
            return
        time.sleep(0.3)
    raise AssertionError(f"service {service} not running: {json.dumps(tasks)[-2000:]}")


def prepare_network(manager: SwarmNode, docker_client: docker.DockerClient) -> None:
    """The overlay network servers join, made usable (FIELD-NOTES: the first task needing a
    generic resource on a fresh overlay can loop on "missing network attachments"; a global
    service on it, running on every node for as long as the swarm lives, avoids that)."""
    client = manager.client()
    client.networks.create(NETWORK, driver="overlay", attachable=True)
    warm = client.services.create(
        IMAGE,
        ["sleep", "600"],
        name="cudaswarm-warmup",
        networks=[NETWORK],
        mode=docker.types.ServiceMode("global"),
        init=True,
        stop_grace_period=10**9,
    )
    wait_task_running(client, warm.name, count=len(client.nodes.list()))


def remove_volumes(node: SwarmNode) -> None:
    """Every service and volume of the node's engine (it is the fixture's alone)."""
    client = node.client()
    if client.info().get("Swarm", {}).get("ControlAvailable"):
        for service in client.services.list():
            service.remove()
    # Stopped task containers (Swarm keeps a history) still hold their volumes.
    for container in client.containers.list(all=True):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # removed by Swarm in the meantime
    for volume in node.client().volumes.list():
        volume.remove(force=True)


@pytest.fixture(scope="module")
def one_node_swarm(docker_client):
    """A one-node swarm advertising 4 GPUs (generic resources), the user image loaded."""
    node = SwarmNode(1, gpus=ONE_NODE_GPUS)
    atexit.register(node.stop)  # even when the run is interrupted between fixtures
    try:
        node.start()
        remove_volumes(node)  # an interrupted run's homes
        node.client().swarm.init(advertise_addr=node.ip, listen_addr=f"{node.ip}:2377")
        load_image(docker_client, node, IMAGE)
        prepare_network(node, docker_client)
        yield node
    finally:
        try:  # the home volumes the servers made (the engine is this fixture's alone)
            remove_volumes(node)
        except Exception as e:
            print(f"pruning the swarm node's volumes failed: {e}")
        node.stop()


WORKER_GPUS = ("GPU-b0000001", "GPU-b0000002")


@pytest.fixture(scope="module")
def two_node_swarm(docker_client):
    """A manager (4 GPUs, gpu=a100) and a worker in another namespace (2 GPUs, gpu=h100)."""
    manager = SwarmNode(1, gpus=ONE_NODE_GPUS)
    worker = SwarmNode(2, gpus=WORKER_GPUS)
    atexit.register(manager.stop)
    atexit.register(worker.stop)
    try:
        for node in (manager, worker):
            node.start()
            remove_volumes(node)
            load_image(docker_client, node, IMAGE)
        m = manager.client()
        m.swarm.init(advertise_addr=manager.ip, listen_addr=f"{manager.ip}:2377")
        m.swarm.reload()
        worker.client().swarm.join(
            remote_addrs=[f"{manager.ip}:2377"],
            join_token=m.swarm.attrs["JoinTokens"]["Worker"],
            advertise_addr=worker.ip,
            listen_addr=f"{worker.ip}:2377",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            nodes = {n.attrs["Description"]["Hostname"]: n for n in m.nodes.list()}
            if len(nodes) == 2 and all(
                n.attrs["Status"]["State"] == "ready" for n in nodes.values()
            ):
                break
            time.sleep(0.3)
        for name, gpu in ((manager.name, "a100"), (worker.name, "h100")):
            spec = nodes[name].attrs["Spec"]
            nodes[name].update({**spec, "Labels": {**spec.get("Labels", {}), "gpu": gpu}})
        prepare_network(manager, docker_client)
        yield manager, worker
    finally:
        for node in (manager, worker):  # the manager removes the services first
            try:
                remove_volumes(node)
            except Exception as e:
                print(f"cleaning {node.name} failed: {e}")
        worker.stop()
        manager.stop()
