"""What the hub reads from its Docker engine to keep the GPU table true, in one object.

`gpu_host` decides with data and never holds a spawner or a Docker client; it reads the engine
through an `EngineReads`: four calls, each off the hub's event loop. `docker_reads` makes one
from DockerSpawner's off-loop `docker(...)` call and its docker-py client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

# Lists containers for a docker-py style `filters` dict.
ContainerLister = Callable[[dict], Awaitable[list[dict]]]
# docker inspect of one container by id (raises when it is gone).
Inspector = Callable[[str], Awaitable[dict]]
# docker info of the engine.
EngineInfo = Callable[[], Awaitable[dict]]
# Container events of the engine between two times (seconds since the epoch), in order.
EventReader = Callable[[float, float], Awaitable[list[dict]]]


@dataclass(frozen=True)
class EngineReads:
    """The engine's containers, one container's inspect, `docker info`, and events.

    Without `inspect`, containers the hub did not start are not looked at; without
    `events`, which containers run is listed each time instead of followed.
    """

    containers: ContainerLister
    inspect: Inspector | None = None
    info: EngineInfo | None = None
    events: EventReader | None = None


def event_stamp(t: float) -> str:
    """A time as the engine reads it: "seconds.nanoseconds" (a float's digits would be
    taken as nanoseconds)."""
    return f"{int(t)}.{int(t % 1 * 1e9):09d}"


def docker_reads(
    docker: Callable[..., Awaitable], client: Callable[[], object], executor: Executor
) -> EngineReads:
    """EngineReads over DockerSpawner's `docker(method, *args)` and its docker-py client.

    `client` is called in the worker thread, never on the hub's event loop: DockerSpawner
    makes its client on first use, which asks the engine for its API version (and raises
    when the engine is down).
    """

    async def containers(filters: dict) -> list[dict]:
        return await docker("containers", filters=filters)

    async def inspect(container_id: str) -> dict:
        return await docker("inspect_container", container_id)

    async def info() -> dict:
        return await docker("info")

    async def events(since: float, until: float) -> list[dict]:
        def read() -> list[dict]:
            # A stream that ends at `until`: read whole, in a thread.
            stream = client().events(  # type: ignore[attr-defined]
                since=event_stamp(since),
                until=event_stamp(until),
                filters={"type": "container"},
                decode=True,
            )
            return list(stream)

        return await asyncio.get_running_loop().run_in_executor(executor, read)

    return EngineReads(containers, inspect, info, events)
