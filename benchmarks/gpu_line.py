"""GPU-freed-to-ready: how soon the first user in line has a running server once a GPU frees.

One real hub (the project's jupyterhub_config.py, as the tests start it) on the real engine
with one stand-in GPU (the engine's runtime named `nvidia` pointing at runc, as
scripts/test.sh sets it up). Each round: a holder takes the GPU; a waiter asks for it with
"wait": true and takes place 1 in line; the holder is stopped, and the waiter is timed from
the moment the holder's server is gone (its GPU free) until the hub reports the waiter's
server ready, with no request from the waiter. In the same run, for the ratio, a plain
spawn on a free GPU is timed from its POST to ready: freed-to-ready minus that is what the
line itself costs (its look every second, then the same start).

    .venv/bin/python benchmarks/gpu_line.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker  # noqa: E402

from spawner.host.deployment import ensure_network  # noqa: E402
from tests.hubtools import TEST_NETWORK, make_hub, remove_hub_leftovers  # noqa: E402

CONFIG = """
c.CUDADockerSpawner.gpu_inventory = [{"id": "0", "name": "Stand-in GPU"}]
c.CUDADockerSpawner.profiles = [{"slug": "gpu", "display_name": "One GPU", "gpus": 1}]
c.CUDADockerSpawner.gpu_request_style = "runtime"
c.DockerSpawner.remove = True
c.Spawner.poll_interval = 1
"""


def started(r) -> None:
    if r.status_code not in (201, 202):
        raise RuntimeError(f"spawn failed: {r.status_code} {r.text}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    client = docker.from_env()
    ensure_network(client, TEST_NETWORK)
    freed_to_ready, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        hub = make_hub(Path(tmp) / "line", CONFIG)
        hub.start()
        try:
            for r in range(args.rounds):
                holder, waiter = f"blhold{r}", f"blwait{r}"
                hub.api("POST", "users", json={"usernames": [holder, waiter]})
                t0 = time.perf_counter()
                started(hub.api("POST", f"users/{holder}/server", json={"profile": "gpu"}))
                hub.wait_ready(holder, timeout=180)
                plain.append(time.perf_counter() - t0)
                options = {"profile": "gpu", "wait": True}
                started(hub.api("POST", f"users/{waiter}/server", json=options))
                hub.progress_until(waiter, "number 1 in line", timeout=60)
                hub.api("DELETE", f"users/{holder}/server")
                hub.wait_stopped(holder, timeout=120)
                t_freed = time.perf_counter()
                hub.wait_ready(waiter, timeout=180)
                freed_to_ready.append(time.perf_counter() - t_freed)
                print(
                    f"  round {r}: plain spawn {plain[-1]:.2f}s, "
                    f"freed-to-ready {freed_to_ready[-1]:.2f}s"
                )
                hub.api("DELETE", f"users/{waiter}/server")
                hub.wait_stopped(waiter, timeout=120)
        finally:
            hub.stop()
            remove_hub_leftovers(client, hub)
    a, b = statistics.median(freed_to_ready), statistics.median(plain)
    print(f"\nfreed-to-ready median {a:.2f}s (max {max(freed_to_ready):.2f}s)")
    print(f"plain spawn median    {b:.2f}s")
    print(f"ratio freed-to-ready / plain spawn: {a / b:.2f}")


if __name__ == "__main__":
    main()
