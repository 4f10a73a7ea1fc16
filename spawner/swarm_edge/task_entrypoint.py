"""Entrypoint run in a Swarm task: the GPUs Swarm assigned become NVIDIA_VISIBLE_DEVICES.

Swarm hands a task its generic resources as `DOCKER_RESOURCE_NVIDIA-GPU=GPU-a,GPU-b`. A
shell drops that name (the hyphen), so this runs in Python, then executes the server.
It never writes "all": without an assignment the container sees no GPU ("void").
Standard library only: the hub sends this file's source as the service's command
(`python3 -c <source> <command...>`), so any image with python3 runs it unchanged.
"""

import os
import sys

ASSIGNED = "DOCKER_RESOURCE_NVIDIA-GPU"


def visible_devices(environ: dict) -> str:
    """NVIDIA_VISIBLE_DEVICES for this task: Swarm's assignment, else "void"."""
    assigned = ",".join(p.strip() for p in environ.get(ASSIGNED, "").split(",") if p.strip())
    if assigned:
        return assigned
    current = environ.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    return "void" if current.lower() in ("", "all") else current


def main(argv: list) -> None:
    os.environ["NVIDIA_VISIBLE_DEVICES"] = visible_devices(dict(os.environ))
    if not argv:
        sys.exit("swarm entrypoint: no command to run")
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
