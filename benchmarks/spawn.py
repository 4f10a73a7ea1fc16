"""Spawn-to-ready time: CUDADockerSpawner against vanilla DockerSpawner, interleaved A/B.

Two real hubs on the real engine driven from this one process: by default one per spawner;
with --cuda-vs-cpu both are CUDADockerSpawner, one starting the PyTorch 2.9 / CUDA 12.8
image and one the CPU image. Each round spawns N users at once on hub A, then on hub B (the
order alternates every round), and times each user from the spawn POST until the hub
reports the server ready. Servers are stopped and their containers removed between rounds,
so every spawn creates a fresh container. Prints medians and the ratio A / B.

    .venv/bin/python benchmarks/spawn.py --rounds 5 --users 1 10
    .venv/bin/python benchmarks/spawn.py --vanilla-image cudaspawner/plain:latest
    .venv/bin/python benchmarks/spawn.py --cuda-vs-cpu --rounds 5 --users 1
    .venv/bin/python benchmarks/spawn.py --swarm --rounds 5 --users 1

--swarm adds a third column, CUDASwarmSpawner on a one-node swarm with the same image (its
own dockerd in its own network namespace, as tests/swarm does; run it as root, not beside
tests/swarm). Ratios are against the first column.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker  # noqa: E402

from spawner.host.deployment import ensure_network  # noqa: E402
from tests.hubtools import TEST_NETWORK, Hub, make_hub, remove_hub_leftovers  # noqa: E402

BOTH = """
c.DockerSpawner.remove = True
c.JupyterHub.log_level = "INFO"
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.active_server_limit = 0
"""


def hub_config(spawner: str, image: str) -> str:
    config = BOTH + f"c.JupyterHub.spawner_class = {spawner!r}\nc.DockerSpawner.image = {image!r}\n"
    if spawner == "cuda-docker":
        # One profile, this image: a spawn with no options starts it, with no GPU.
        profile = {"slug": "bench", "display_name": "Benchmark", "image": image}
        config += f"c.CUDADockerSpawner.profiles = [{profile!r}]\n"
    return config


def time_spawns(hub: Hub, users: list[str]) -> list[float]:
    """Spawn `users` at once; seconds from each POST to ready."""

    def one(user: str) -> float:
        hub.api("POST", "users", json={"usernames": [user]})
        t0 = time.perf_counter()
        r = hub.api("POST", f"users/{user}/server")
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawn of {user} failed: {r.status_code} {r.text}")
        hub.wait_ready(user, timeout=180)
        return time.perf_counter() - t0

    with ThreadPoolExecutor(len(users)) as pool:
        return list(pool.map(one, users))


def stop_all(hub: Hub, users: list[str], client: docker.DockerClient) -> None:
    for u in users:
        hub.api("DELETE", f"users/{u}/server")
    for u in users:
        hub.wait_stopped(u, timeout=120)
    for _ in range(10):
        try:
            remove_hub_leftovers(client, hub)
            return
        except docker.errors.APIError as e:  # an auto-removed container still going away
            if e.status_code != 409:
                raise
            time.sleep(0.5)
    remove_hub_leftovers(client, hub)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--users", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--ours-image", default="cudaspawner/cpu:latest")
    ap.add_argument("--vanilla-image", default="cudaspawner/cpu:latest")
    ap.add_argument(
        "--cuda-vs-cpu",
        action="store_true",
        help="compare the CUDA image with the CPU image, both through CUDADockerSpawner",
    )
    ap.add_argument("--cuda-image", default="cudaspawner/pytorch-cuda:2.9-cuda12.8")
    ap.add_argument("--cpu-image", default="cudaspawner/cpu:latest")
    ap.add_argument(
        "--swarm",
        action="store_true",
        help="add CUDASwarmSpawner on a one-node swarm (same image) as a third column",
    )
    args = ap.parse_args()
    if args.cuda_vs_cpu:
        pair = {"cuda": ("cuda-docker", args.cuda_image), "cpu": ("cuda-docker", args.cpu_image)}
    else:
        pair = {
            "cudaspawner": ("cuda-docker", args.ours_image),
            "vanilla": ("docker", args.vanilla_image),
        }

    client = docker.from_env()
    ensure_network(client, TEST_NETWORK)
    node = swarm_node(client, args.ours_image) if args.swarm else None
    with tempfile.TemporaryDirectory() as tmp:
        hubs = {
            name: make_hub(Path(tmp) / name, hub_config(spawner, image))
            for name, (spawner, image) in pair.items()
        }
        if node is not None:
            pair["swarm"] = ("cuda-swarm", args.ours_image)
            hubs["swarm"] = make_hub(
                Path(tmp) / "swarm", swarm_config(node, args.ours_image), swarm_env(node)
            )
        for hub in hubs.values():
            hub.start()
        results: dict[tuple[str, int], list[float]] = {}
        try:
            for n in args.users:
                for r in range(args.rounds):
                    order = list(hubs) if r % 2 == 0 else list(reversed(hubs))
                    for name in order:
                        users = [f"b{name[:3]}{n}x{r}u{i}" for i in range(n)]
                        times = time_spawns(hubs[name], users)
                        results.setdefault((name, n), []).extend(times)
                        stop_all(hubs[name], users, client)
                        median = statistics.median(times)
                        print(f"  {name:12s} users={n:<3d} round={r} median={median:.2f}s")
        finally:
            for hub in hubs.values():
                hub.stop()
                remove_hub_leftovers(client, hub)
            if node is not None:
                node.stop()

    names = list(hubs)
    for name, (spawner, image) in pair.items():
        print(f"{name}: {spawner} with {image}")
    first = names[0]
    print(
        f"\n{'users':>5} | "
        + " | ".join(f"{name + ' median':>18}" for name in names)
        + " | "
        + " | ".join(f"{name}/{first}" for name in names[1:])
    )
    for n in args.users:
        medians = [statistics.median(results[(name, n)]) for name in names]
        print(
            f"{n:>5} | "
            + " | ".join(f"{m:>17.2f}s" for m in medians)
            + " | "
            + " | ".join(f"{m / medians[0]:.2f}" for m in medians[1:])
        )


def swarm_node(client: docker.DockerClient, image: str):
    """A one-node swarm on its own engine with 4 advertised GPUs, the image loaded."""
    from tests.swarm.conftest import ONE_NODE_GPUS, prepare_network, remove_volumes
    from tests.swarm.swarmnode import SwarmNode, load_image

    node = SwarmNode(9, gpus=ONE_NODE_GPUS, name="cswbench")
    node.start()
    remove_volumes(node)
    node.client().swarm.init(advertise_addr=node.ip, listen_addr=f"{node.ip}:2377")
    load_image(client, node, image)
    prepare_network(node, client)
    return node


def swarm_config(node, image: str) -> str:
    from tests.swarm.conftest import NETWORK

    profile = {"slug": "bench", "display_name": "Benchmark", "image": image}
    return (
        BOTH
        + 'c.JupyterHub.spawner_class = "spawner.swarm_edge.spawner.CUDASwarmSpawner"\n'
        + f"c.JupyterHub.hub_connect_ip = {node.host_ip!r}\n"
        + f"c.CUDASwarmSpawner.network_name = {NETWORK!r}\n"
        + f"c.CUDASwarmSpawner.profiles = [{profile!r}]\n"
    )


def swarm_env(node) -> dict:
    return {"DOCKER_HOST": node.url, "CUDASPAWNER_HUB_IP": node.host_ip, "CUDASPAWNER_SSH": "0"}


if __name__ == "__main__":
    main()
