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

from spawner.deployment import ensure_network  # noqa: E402
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
    with tempfile.TemporaryDirectory() as tmp:
        hubs = {
            name: make_hub(Path(tmp) / name, hub_config(spawner, image))
            for name, (spawner, image) in pair.items()
        }
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

    a, b = list(hubs)
    for name, (spawner, image) in pair.items():
        print(f"{name}: {spawner} with {image}")
    print(f"\n{'users':>5} | {a + ' median':>18} | {b + ' median':>18} | ratio {a}/{b}")
    print("------|--------------------|--------------------|------")
    for n in args.users:
        first = statistics.median(results[(a, n)])
        second = statistics.median(results[(b, n)])
        print(f"{n:>5} | {first:>17.2f}s | {second:>17.2f}s | {first / second:.2f}")


if __name__ == "__main__":
    main()
