"""GPU truth from the engine (issue 14): GPUs of containers the hub did not start are taken.

The engine is a fake here (a container list and an inspect); the real-engine proof is in
tests/integration/test_shared_engine.py.
"""

from __future__ import annotations

import logging
import time

import pytest

from spawner.engine import failures as errors
from spawner.engine.hub_identity import HUB_LABEL
from spawner.gpu.allocator import Gpu, GpuAllocator, GpuUnavailable
from spawner.gpu.engine_view import EngineReads
from spawner.gpu.host import GpuHost
from spawner.host.internal_ssl import AddressPlanner, is_address_taken, pick_free_address

INVENTORY = [Gpu(0, "GPU-a"), Gpu(1, "GPU-b")]
OURS = {HUB_LABEL: "hub-me"}


class FakeEngine:
    """Running containers by id -> (labels, docker inspect), counting the calls."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[dict, dict]] = {}
        self.lists = self.inspects = 0

    def run(self, cid: str, labels: dict, inspected: dict) -> None:
        self.running[cid] = (labels, {"Id": cid, "Name": f"/{cid}", **inspected})

    async def containers(self, filters: dict) -> list[dict]:
        self.lists += 1
        label = filters.get("label")
        return [
            {"Id": cid, "Labels": labels}
            for cid, (labels, _) in self.running.items()
            if label is None or label in labels
        ]

    async def inspect(self, cid: str) -> dict:
        self.inspects += 1
        return self.running[cid][1]

    async def info(self) -> dict:
        return {"DefaultRuntime": "runc"}

    def reads(self) -> EngineReads:
        return EngineReads(self.containers, self.inspect, self.info)


def gpus_request(*ids: str) -> dict:
    return {"HostConfig": {"DeviceRequests": [{"DeviceIDs": list(ids), "Capabilities": [["gpu"]]}]}}


def nvidia_env(ids: str) -> dict:
    return {
        "HostConfig": {"Runtime": "nvidia"},
        "Config": {"Env": [f"NVIDIA_VISIBLE_DEVICES={ids}"]},
    }


@pytest.fixture
def host():
    log = logging.getLogger("test")
    return GpuHost(list(INVENTORY), GpuAllocator(INVENTORY, log=log), log, hub_id="hub-me")


async def reserve(host: GpuHost, engine: FakeEngine, user: str, count: int = 1):
    return await host.reserve(user, user, [], count, engine.reads())


async def test_a_gpu_held_by_an_outside_container_is_never_assigned_then_freed(host):
    engine = FakeEngine()
    engine.run("admin-job", {}, gpus_request("0"))  # docker run --gpus device=0
    assert [g.id for g in await reserve(host, engine, "alice")] == ["GPU-b"]
    with pytest.raises(GpuUnavailable):
        await reserve(host, engine, "bob")
    assert host.allocator.outside() == {"GPU-a": "admin-job"}
    del engine.running["admin-job"]  # the job ends
    assert [g.id for g in await reserve(host, engine, "bob")] == ["GPU-a"]
    assert host.allocator.outside() == {}


async def test_another_hubs_server_and_the_nvidia_runtime_count_as_outside(host):
    engine = FakeEngine()
    other_hub = {HUB_LABEL: "hub-staging", "org.cudaspawner.gpus": "GPU-b"}
    engine.run("jupyter-alice", other_hub, nvidia_env("GPU-b"))
    engine.run("runtime-job", {}, nvidia_env("0"))
    assert await host.free_count(engine.reads()) == 0
    # The other hub's labels are not rebuilt into this hub's table as our own alice.
    assert host.allocator.holdings() == {}


async def test_our_own_containers_are_not_outside(host):
    engine = FakeEngine()
    await reserve(host, engine, "alice")
    engine.run("jupyter-alice", {**OURS, "org.cudaspawner.gpus": "GPU-a"}, gpus_request("GPU-a"))
    assert await host.free_count(engine.reads()) == 1
    assert engine.inspects == 0


async def test_each_container_is_inspected_once_and_the_list_is_one_call(host):
    engine = FakeEngine()
    for i in range(50):
        engine.run(f"c{i}", {}, {"HostConfig": {}})
    await reserve(host, engine, "alice")
    lists, inspects = engine.lists, engine.inspects
    assert inspects == 50
    host.allocator.release("alice")
    await reserve(host, engine, "alice")
    assert engine.inspects == inspects and engine.lists == lists + 1
    engine.run("new", {}, gpus_request("1"))
    await reserve(host, engine, "alice")
    assert engine.inspects == inspects + 1


def test_unknown_runtime_no_driver_and_unknown_cdi_are_a_400_sentence_and_an_admin_hint():
    cases = {
        "Unknown runtime specified nvidia": "nvidia-ctk runtime configure",
        "unknown or invalid runtime name: nvidia": "nvidia-ctk runtime configure",
        'could not select device driver "" with capabilities: [[gpu]]': "nvidia-container-toolkit",
        "CDI device injection failed: unresolvable CDI devices nvidia.com/gpu=0": "cdi generate",
    }
    for text, hint in cases.items():
        err = errors.start_failure(RuntimeError(text))
        assert err.status_code == 400 and err.jupyterhub_message == errors.NO_GPU_RUNTIME
        assert hint in errors.gpu_path_fault(text)
    assert errors.start_failure(RuntimeError("disk full")) is None


def test_the_address_pick_starts_where_asked_and_skips_taken_ones():
    assert pick_free_address("10.9.0.0/29", "10.9.0.1", []) == "10.9.0.2"
    # start 5 -> 10.9.0.6 is taken, wraps to .1 (the gateway), then .2
    assert pick_free_address("10.9.0.0/29", "10.9.0.1", ["10.9.0.6/29"], start=5) == "10.9.0.2"
    assert is_address_taken(RuntimeError("500: Address already in use"))


async def test_an_address_another_hub_took_is_never_planned_again():
    planner = AddressPlanner()
    net = {"IPAM": {"Config": [{"Subnet": "10.9.0.0/29", "Gateway": "10.9.0.1"}]}}

    async def inspect():
        return net

    seen = set()
    first = await planner.plan("alice", inspect)
    planner.forget("alice", taken=True)
    for _ in range(20):
        seen.add(await planner.plan("alice", inspect))
        planner.forget("alice")
    assert first not in seen and seen


async def test_with_events_the_engine_is_listed_once_and_kept_current_by_events(host):
    engine = FakeEngine()
    log: list[dict] = []

    async def events(since: float, until: float) -> list[dict]:
        return [e for e in log if since <= e["time"] <= until]

    def happen(action: str, cid: str, labels: dict) -> None:
        log.append(
            {
                "time": time.time(),
                "Action": action,
                "Actor": {"ID": cid, "Attributes": {"name": cid, **labels}},
            }
        )

    async def free() -> int:
        return await host.free_count(
            EngineReads(engine.containers, engine.inspect, engine.info, events)
        )

    assert await free() == 2
    engine.run("job", {}, gpus_request("0"))
    happen("start", "job", {})
    assert await free() == 1 and host.allocator.outside() == {"GPU-a": "job"}
    happen("die", "job", {})
    assert await free() == 2
    happen("start", "jupyter-x", {**OURS, "org.cudaspawner.gpus": "GPU-b"})  # ours: not outside
    engine.run("jupyter-x", OURS, gpus_request("GPU-b"))
    assert await free() == 2
    assert host.outside.lists == 1 and engine.lists == 2  # rebuild + one list, then events only


async def test_docker_reads_make_the_client_in_a_worker_thread_never_on_the_loop():
    # DockerSpawner makes its client on first use, asking the engine for its API version: on
    # the hub's event loop that would block every user, and raise when the engine is down.
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from spawner.gpu.engine_view import docker_reads

    made_in: list[str] = []

    class Client:
        def events(self, **kwargs):
            assert kwargs["since"].count(".") == 1 and len(kwargs["since"].split(".")[1]) == 9
            return iter([{"Action": "start", "Actor": {"ID": "c1"}}])

    def client() -> Client:
        made_in.append(threading.current_thread().name)
        return Client()

    async def docker(method: str, *args, **kwargs):
        return []

    with ThreadPoolExecutor(1, thread_name_prefix="docker") as executor:
        reads = docker_reads(docker, client, executor)
        assert made_in == []  # making the reads asks nothing of the engine
        assert await reads.containers({}) == []
        assert await reads.events(time.time() - 1.5, time.time()) == [
            {"Action": "start", "Actor": {"ID": "c1"}}
        ]
    assert made_in and all(name.startswith("docker") for name in made_in)
