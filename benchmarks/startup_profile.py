"""Where spawn time goes: Docker calls on the hub side, and the server's start in the container.

For each image, median of N runs:
  hub side   image inspect, container create, container start (the Docker API calls a spawn
             makes, timed from this process like the hub times them);
  container  importing the single-user server stack (timed inside the container), and
             `docker start` -> the server accepting connections on its port.

    .venv/bin/python benchmarks/startup_profile.py cudaspawner/cpu:latest cudaspawner/plain:latest
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

import docker

IMPORTS = "import jupyterhub.singleuser, jupyter_server.serverapp, jupyterlab"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def in_container(client: docker.DockerClient, image: str, code: str) -> float:
    """Seconds the snippet takes inside the image, measured inside (no container start)."""
    out = client.containers.run(
        image,
        [
            "python",
            "-c",
            f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)",
        ],
        remove=True,
    )
    return float(out.decode().strip().splitlines()[-1])


def first_listen(client: docker.DockerClient, image: str) -> dict[str, float]:
    api = client.api
    phases = {}
    t0 = time.perf_counter()
    api.inspect_image(image)
    phases["image inspect"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = api.create_container(
        image,
        ["jupyter", "server", "--ip=0.0.0.0", "--port=8888", "--IdentityProvider.token=x"],
        environment={"NVIDIA_VISIBLE_DEVICES": "void"},
    )
    phases["container create"] = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        api.start(c["Id"])
        phases["container start"] = time.perf_counter() - t0
        ip = api.inspect_container(c["Id"])["NetworkSettings"]["IPAddress"]
        while True:
            try:
                socket.create_connection((ip, 8888), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.02)
        phases["start -> listening"] = time.perf_counter() - t0
    finally:
        api.remove_container(c["Id"], force=True)
    return phases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()
    client = docker.from_env()
    rows: dict[str, dict[str, float]] = {}
    for image in args.images:
        samples: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for k, v in first_listen(client, image).items():
                samples.setdefault(k, []).append(v)
            samples.setdefault("import server stack", []).append(
                in_container(client, image, IMPORTS)
            )
        rows[image] = {k: statistics.median(v) for k, v in samples.items()}
    keys = list(next(iter(rows.values())))
    print(f"{'phase (median, s)':24s}" + "".join(f" | {i:>26s}" for i in rows))
    for k in keys:
        print(f"{k:24s}" + "".join(f" | {rows[i][k]:26.3f}" for i in rows))


if __name__ == "__main__":
    main()
