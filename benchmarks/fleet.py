"""The GPU admin page and the hub's GPU table with 64 GPUs and 500 users: each must answer in
under 100 ms.

Simulated holdings: 500 users with active servers (hub API shape, with groups), 64 of them
holding one GPU each (container labels, live figures, idle watches), 436 CPU-only. Timed:

- table: one look's pure work, hub users + containers -> rows + summary (fleet.py);
- cli: `cudaspawner-gpus`'s table from the same 500 containers (cli.build_report);
- page: GET of the admin page over HTTP, from the service's real tornado app;
- api: GET of the GPU table as JSON (api/gpus) over HTTP;
- metrics: a scrape of the fleet figures the hub exports (hub_metrics.FleetCollector).

Hub OAuth is the one part left out of the HTTP timings (a logged-in admin, cached): it is
the hub's own cost, the same for every service page. Prints median and p95 per item and
exits 1 when any p95 is 100 ms or more.

    .venv/bin/python benchmarks/fleet.py [--repeat 50] [--gpus 64] [--users 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from tornado.httpclient import AsyncHTTPClient  # noqa: E402

from spawner.admin.gpus_cli import build_report, render_table  # noqa: E402
from spawner.gpu.allocator import Gpu  # noqa: E402
from spawner.gpu.labels import container_labels  # noqa: E402
from spawner.services import admin_page  # noqa: E402
from spawner.services.fleet import fleet_rows, gpu_servers, summarise  # noqa: E402
from spawner.services.fleet_service import FleetService, FleetState, ReclaimSettings  # noqa: E402
from spawner.services.gpu_reclaim import Watch  # noqa: E402
from spawner.services.hub_metrics import FleetCollector  # noqa: E402

LIMIT_MS = 100.0


def simulated_fleet(gpus: int, users: int, now: float):
    """(hub users, containers, inventory, live figures, watches)."""
    inventory = [Gpu(index=i, id=f"GPU-{i:08x}-0000-4000-8000-000000000000", name="H100")
                 for i in range(gpus)]  # fmt: skip
    hub_users, containers, live, watches = [], [], {}, {}
    for n in range(users):
        name = f"user{n:03d}"
        cid = f"{n:064x}"
        hub_users.append({
            "name": name,
            "groups": [f"team{n % 12}"],
            "servers": {"": {"url": f"/user/{name}/", "ready": True,
                             "state": {"object_id": cid}}},
        })  # fmt: skip
        if n < gpus:
            gpu = inventory[n]
            since, profile = "2026-01-01T09:00:00Z", f"p{n % 4}"
            labels = container_labels(
                user=name, server=name, gpus=[gpu], since=since, profile=profile
            )
            live[name] = [{"index": 0, "uuid": gpu.id, "utilization_gpu": (n * 7) % 100,
                           "memory_used": n * 2**28, "memory_total": 80 * 2**30}]  # fmt: skip
            if n % 3 == 0:
                watches[name] = Watch(
                    idle_since=now - 600 - n, stop_at=now + 300 if n % 6 else None
                )
        else:
            labels = {"org.cudaspawner.user": name, "org.cudaspawner.server": name}
        containers.append({"Id": cid, "Labels": labels})
    return hub_users, containers, inventory, live, watches


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def timed_async(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def http_timings(state: FleetState, inventory, repeat: int) -> dict[str, list[float]]:
    fleet = FleetService(client=None, containers=None, settings=ReclaimSettings(True, {}),
                         inventory=inventory)  # fmt: skip
    fleet.state = state
    app = admin_page.make_app(fleet, "/services/gpu-admin/", b"x" * 32)

    async def is_admin(name: str) -> bool:
        return True

    app.settings["is_admin"] = is_admin
    original = admin_page.AdminHandler.get_current_user
    admin_page.AdminHandler.get_current_user = lambda self: {"name": "admin"}
    port = _free_port()
    server = app.listen(port, "127.0.0.1")
    client = AsyncHTTPClient(force_instance=True)
    base = f"http://127.0.0.1:{port}/services/gpu-admin/"

    async def get(url: str, expect: str) -> None:
        response = await client.fetch(url)
        assert expect in response.body.decode(), response.body[:300]

    try:
        await get(base, "GPU fleet")  # warm-up: template compiled once
        page = await timed_async(lambda: get(base, "64 of 64 GPUs held"), repeat)
        api = await timed_async(lambda: get(base + "api/gpus", '"gpus"'), repeat)
    finally:
        client.close()
        server.stop()
        admin_page.AdminHandler.get_current_user = original
    return {"page": page, "api": api}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--gpus", type=int, default=64)
    p.add_argument("--users", type=int, default=500)
    args = p.parse_args(argv)
    now = time.time()
    users, containers, inventory, live, watches = simulated_fleet(args.gpus, args.users, now)

    def table():
        servers, _ = gpu_servers(users, containers)
        rows = fleet_rows(servers, inventory, live, watches, now)
        return rows, summarise(rows, servers, inventory), servers

    rows, summary, servers = table()
    assert len(rows) == args.gpus and len(servers) == args.gpus
    results = {
        "table": timed(table, args.repeat),
        "cli": timed(lambda: render_table(build_report(containers, inventory)), args.repeat),
    }
    state = FleetState(rows=rows, summary=summary, servers=servers, looked_at=now)
    results.update(asyncio.run(http_timings(state, inventory, args.repeat)))

    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / "fleet.json"
        snapshot.write_text(json.dumps({"written_at": time.time(), "interval": 30,
                                        **summary.__dict__,
                                        "reclaimed_by_profile": {"p0": 3}}))  # fmt: skip
        registry = CollectorRegistry()
        registry.register(FleetCollector(snapshot))
        results["metrics"] = timed(lambda: generate_latest(registry), args.repeat)

    print(f"{args.gpus} GPUs, {args.users} users, {args.repeat} runs each (milliseconds)")
    worst = 0.0
    for name, values in results.items():
        values = sorted(values)
        p95 = values[max(0, int(len(values) * 0.95) - 1)]
        worst = max(worst, p95)
        print(f"  {name:8s} median {statistics.median(values):7.2f}   p95 {p95:7.2f}")
    verdict = "OK" if worst < LIMIT_MS else "TOO SLOW"
    print(f"worst p95 {worst:.2f} ms: {verdict} (limit {LIMIT_MS:.0f} ms)")
    return 0 if worst < LIMIT_MS else 1


if __name__ == "__main__":
    sys.exit(main())
