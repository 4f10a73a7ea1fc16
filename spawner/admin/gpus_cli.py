"""Admin view of the GPU table: which user holds which GPU, since when.

Reads the same container labels the hub rebuilds its table from, straight from the
Docker engine (``docker.from_env()``: DOCKER_HOST or the local socket), so it works while
the hub is down. ``cudaspawner-gpus`` or ``python -m spawner gpus``.

``cudaspawner-gpus users`` lists existing accounts whose names break the user-name policy
(`spawner.accounts.usernames`), read from the hub's database; such accounts can no longer log in.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from ..accounts.usernames import RULE, username_problem
from ..gpu.allocator import Gpu, available, plural
from ..gpu.claims import GpuClaim, container_claim, resolve
from ..gpu.inventory import INVENTORY_ENV, inventory_from_env, load_inventory
from ..gpu.labels import ACTIVE_STATES, GPUS_LABEL, format_since, read_holding

# Container states in which a container still has its GPUs (the hub counts the same).
COLUMNS = ("gpu", "model", "user", "server", "container", "since", "status")
EXIT_ENGINE = 2
OUTSIDE = "outside the hub"  # the user column of a GPU held by a container no hub started


class EngineUnreachable(Exception):
    """The Docker engine could not be asked; `str(e)` is the one line to print."""


@dataclass(frozen=True)
class Row:
    gpu: str
    model: str
    user: str
    server: str
    container: str
    since: str
    status: str
    index: int | None = None


@dataclass(frozen=True)
class GpuReport:
    rows: tuple[Row, ...]
    problems: tuple[str, ...]
    inventory: tuple[Gpu, ...] | None  # None: not given, so free GPUs are unknown
    free: tuple[Gpu, ...] | None


def _is_active(status: str) -> bool:
    return status.split(" ", 1)[0] in ACTIVE_STATES


def build_report(
    containers: Sequence[Mapping],
    inventory: Sequence[Gpu] | None,
    outside: Sequence[GpuClaim] = (),
) -> GpuReport:
    """The table from the engine's container list (docker's low-level `containers()`).

    One row per GPU per container; with an inventory, also one row per free GPU, the
    model names, and a mark on GPUs that the inventory does not know. Two active
    containers claiming one GPU are both marked "(conflict)". `outside`: GPU claims of
    running containers without hub labels (an admin's `docker run --gpus ...`), shown as
    held "outside the hub".
    """
    by_id = {g.id: g for g in inventory} if inventory is not None else {}
    rows: list[Row] = []
    problems: list[str] = []
    for c in containers:
        name = _container_name(c)
        holding, reason = read_holding(c.get("Labels") or {})
        if reason:
            problems.append(f"container {name}: {reason}" + ("" if holding else "; ignored"))
        if holding is None:
            continue
        state = c.get("State") or "unknown"
        since = format_since(holding.since) if holding.since else "-"
        for gpu_id in holding.gpu_ids:
            gpu = by_id.get(gpu_id)
            status = state
            if inventory is not None and gpu is None:
                status += " (not in inventory)"
            rows.append(
                Row(
                    gpu=gpu_id,
                    model=gpu.name if gpu and gpu.name else "-",
                    user=holding.user,
                    server=holding.server,
                    container=name,
                    since=since,
                    status=status,
                    index=gpu.index if gpu else None,
                )
            )
    for claim in outside:
        if inventory is not None:
            gpus, unknown = resolve(claim.refs, inventory)
            refs = [(g.id, g) for g in gpus] + [(u, None) for u in unknown]
        else:
            refs = [(ref, by_id.get(ref)) for ref in claim.refs]
        for gpu_id, gpu in refs:
            rows.append(
                Row(
                    gpu_id,
                    gpu.name if gpu and gpu.name else "-",
                    OUTSIDE,
                    "-",
                    claim.container,
                    "-",
                    "running",
                    gpu.index if gpu else None,
                )
            )
    claims: dict[str, int] = {}
    for r in rows:
        if _is_active(r.status):
            claims[r.gpu] = claims.get(r.gpu, 0) + 1
    rows = [
        Row(**{**asdict(r), "status": r.status + " (conflict)"}) if claims.get(r.gpu, 0) > 1 else r
        for r in rows
    ]
    # Free: what could be given now (not a GPU with a slice held, nor a slice of a GPU
    # held whole).
    free = tuple(available(inventory, claims)) if inventory is not None else None
    for g in free or ():
        rows.append(Row(g.id, g.name or "-", "-", "-", "-", "-", "free", g.index))
    rows.sort(key=lambda r: (r.index is None, r.index or 0, r.gpu, r.status == "free", r.container))
    return GpuReport(
        rows=tuple(rows),
        problems=tuple(problems),
        inventory=tuple(inventory) if inventory is not None else None,
        free=free,
    )


def _container_name(c: Mapping) -> str:
    names = c.get("Names") or []
    if names:
        return str(names[0]).lstrip("/")
    return str(c.get("Id", "?"))[:12]


def render_table(report: GpuReport) -> str:
    header = [c.upper() for c in COLUMNS]
    body = [[getattr(r, c) for c in COLUMNS] for r in report.rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    held = len({r.gpu for r in report.rows if _is_active(r.status)})
    if report.inventory is None:
        lines.append(
            f"{plural(held)} held. Give --inventory (or {INVENTORY_ENV}) to list the free ones."
        )
    else:
        free = report.free or ()
        free_ids = ", ".join(g.id for g in free) or "none"
        units = "GPUs and MIG slices" if any(g.parent for g in report.inventory) else "GPUs"
        lines.append(f"{len(free)} of {len(report.inventory)} {units} free: {free_ids}.")
    if not report.rows:
        lines.insert(1, "(no container holds a GPU)")
    return "\n".join(lines)


def render_json(report: GpuReport) -> str:
    free = report.free
    return json.dumps(
        {
            "gpus": [asdict(r) for r in report.rows],
            "free": [g.id for g in free] if free is not None else None,
            "total": len(report.inventory) if report.inventory is not None else None,
            "problems": list(report.problems),
        },
        indent=2,
    )


def list_labelled_containers() -> list[dict]:
    """Every container (running or not) carrying the GPU label, from the engine."""
    try:
        import docker
        import requests.exceptions
    except ImportError:
        raise EngineUnreachable(
            "The Docker SDK for Python is not installed: pip install 'cudaspawner[hub]'."
        ) from None

    where = os.environ.get("DOCKER_HOST") or "the local socket (/var/run/docker.sock)"
    try:
        client = docker.from_env(timeout=15)
        try:
            return client.api.containers(all=True, filters={"label": GPUS_LABEL})
        finally:
            client.close()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        if isinstance(e, docker.errors.APIError):
            raise EngineUnreachable(
                f"The Docker engine at {where} refused to list containers: {e.explanation or e}."
            ) from None
        if "permission denied" in str(e).lower():
            raise EngineUnreachable(
                f"Permission denied on the Docker engine at {where}: run as root or as a "
                "member of the docker group."
            ) from None
        raise EngineUnreachable(
            f"Cannot reach the Docker engine at {where}: start it, or point DOCKER_HOST at "
            "the engine the hub uses."
        ) from None


def list_outside_claims() -> list[GpuClaim]:
    """GPU claims of running containers that carry no hub GPU label (inspected one by one)."""
    import docker

    try:
        client = docker.from_env(timeout=15)
        try:
            default_runtime = client.api.info().get("DefaultRuntime") or "runc"
            claims = []
            for c in client.api.containers(filters={"status": "running"}):
                if GPUS_LABEL in (c.get("Labels") or {}):
                    continue
                try:
                    claim = container_claim(client.api.inspect_container(c["Id"]), default_runtime)
                except docker.errors.NotFound:
                    continue  # stopped in the meantime
                if claim:
                    claims.append(claim)
            return claims
        finally:
            client.close()
    except docker.errors.DockerException as e:
        raise EngineUnreachable(f"Could not read the running containers: {e}.") from None


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Which user holds which GPU of this Docker host, and since when, read "
        "from the labels of the hub's containers.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--inventory",
        metavar="GPUS",
        help='the host\'s GPUs, to show models and free GPUs: "nvml", or a JSON list as in '
        f"CUDADockerSpawner.gpu_inventory (default: ${INVENTORY_ENV})",
    )
    return p


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["users"]:
        return users_main(argv[1:], prog=f"{prog or 'cudaspawner-gpus'} users")
    if argv[:1] == ["swarm"]:  # the cluster's table (docs/swarm.md)
        from .swarm_gpus_cli import swarm_main

        return swarm_main(argv[1:], prog=f"{prog or 'cudaspawner-gpus'} swarm")
    args = parser(prog).parse_args(argv)
    me = prog or "cudaspawner-gpus"
    try:
        inventory = (
            load_inventory(args.inventory) if args.inventory is not None else inventory_from_env()
        )
    except ValueError as e:
        print(f"{me}: {e}", file=sys.stderr)
        return 2
    try:
        containers = list_labelled_containers()
        outside = list_outside_claims()
    except EngineUnreachable as e:
        print(f"{me}: {e}", file=sys.stderr)
        return EXIT_ENGINE
    report = build_report(containers, inventory, outside)
    if args.json:
        print(render_json(report))
    else:
        print(render_table(report))
        for p in report.problems:
            print(f"{me}: warning: {p}", file=sys.stderr)
    return 0


# --- accounts whose names break the user-name policy ------------------------------------------
EXIT_BAD_NAMES = 1
DATA_ENV = "CUDASPAWNER_DATA"


def bad_user_names(names: Sequence[str]) -> list[tuple[str, str]]:
    """(name, what is wrong) for each name the policy refuses, in the given order."""
    found = []
    for name in dict.fromkeys(names):
        problem = username_problem(name)
        if problem:
            found.append((name, problem.replace(f" {RULE}", "")))
    return found


def read_account_names(db_path: str) -> list[str]:
    """Every account name the hub knows: JupyterHub's users and NativeAuthenticator's
    sign-ups (approved or not), read-only, from the hub's SQLite database."""
    if not os.path.exists(db_path):
        raise FileNotFoundError(
            f"No hub database at {db_path}: give --db, or set {DATA_ENV} to the hub's data "
            "directory."
        )
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        names = (
            [row[0] for row in db.execute("SELECT name FROM users")] if "users" in tables else []
        )
        if "users_info" in tables:
            names += [row[0] for row in db.execute("SELECT username FROM users_info")]
    return names


def render_bad_names(found: list[tuple[str, str]], total: int) -> str:
    if not found:
        return f"All {total} account names follow the policy. {RULE}"
    width = max(len(repr(n)) for n, _ in found)
    lines = [f"{'ACCOUNT'.ljust(width)}  PROBLEM"]
    lines += [f"{repr(n).ljust(width)}  {p}" for n, p in found]
    lines.append(
        f"{len(found)} of {total} account names break the policy and cannot log in. {RULE} "
        "Delete those accounts (admin page) and ask their owners to sign up again."
    )
    return "\n".join(lines)


def users_main(argv: Sequence[str], prog: str = "cudaspawner-gpus users") -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        description="List accounts whose names break the user-name policy. Exit status 1 "
        "when there are any, 0 when there are none.",
    )
    default_db = os.path.join(os.environ.get(DATA_ENV, "/var/lib/cudaspawner"), "jupyterhub.sqlite")
    p.add_argument("--db", default=default_db, help=f"the hub's database (default: {default_db})")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    try:
        names = read_account_names(args.db)
    except (OSError, sqlite3.Error) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    total = len(dict.fromkeys(names))
    found = bad_user_names(names)
    if args.json:
        print(json.dumps({"total": total, "bad": [{"name": n, "problem": q} for n, q in found]}))
    else:
        print(render_bad_names(found, total))
    return EXIT_BAD_NAMES if found else 0
