"""`cudaspawner-gpus swarm`: the cluster's GPU table (GPU, node, user, server, since) and
the free GPUs of each node, read from a Swarm manager (the engine DOCKER_HOST names)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ..gpu.cluster import ClusterHolding, ClusterNode, free_gpus, holdings, nodes_from_api
from ..gpu.labels import format_since

EXIT_ENGINE = 2


def render_table(nodes: Sequence[ClusterNode], rows: Sequence[ClusterHolding], free: dict) -> str:
    """The table an admin reads: one line per held GPU, then each node's free GPUs."""
    header = ("GPU", "NODE", "USER", "SERVER", "SINCE")
    body = [
        (r.gpu, r.node, r.user, r.server, format_since(r.since) if r.since else "") for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
             for line in [header, *body]]  # fmt: skip
    if not body:
        lines.append("(no server holds a GPU)")
    for n in nodes:
        ids = free.get(n.id)
        state = f"{len(ids)} of {len(n.gpus)} GPUs free" if ids is not None else "not usable"
        lines.append(f"{n.hostname}: {state}" + (f": {', '.join(ids)}" if ids else ""))
    return "\n".join(lines)


def render_json(nodes: Sequence[ClusterNode], rows: Sequence[ClusterHolding], free: dict) -> str:
    return json.dumps(
        {
            "gpus": [
                {
                    "gpu": r.gpu,
                    "node": r.node,
                    "user": r.user,
                    "server": r.server,
                    "since": format_since(r.since) if r.since else None,
                }  # fmt: skip
                for r in rows
            ],
            "nodes": [
                {"node": n.hostname, "gpus": list(n.gpus), "free": list(free.get(n.id, ()))}
                for n in nodes
            ],
        },
        indent=2,
    )


def swarm_main(argv: Sequence[str], prog: str = "cudaspawner-gpus swarm") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(list(argv))
    import docker

    where = os.environ.get("DOCKER_HOST") or "the local socket"
    try:
        client = docker.from_env(timeout=15)
        try:
            api = client.api
            nodes = nodes_from_api(api.nodes())
            tasks = api.tasks(filters={"desired-state": "running"})
            services = api.services()
        finally:
            client.close()
    except docker.errors.APIError as e:
        print(
            f"{prog}: the engine at {where} is not a Swarm manager ({e.explanation or e}); "
            "point DOCKER_HOST at a manager.",
            file=sys.stderr,
        )
        return EXIT_ENGINE
    except docker.errors.DockerException as e:
        print(f"{prog}: cannot reach the Docker engine at {where}: {e}", file=sys.stderr)
        return EXIT_ENGINE
    rows = holdings(nodes, tasks, services)
    free = free_gpus(nodes, tasks)
    print(render_json(nodes, rows, free) if args.json else render_table(nodes, rows, free))
    return 0
