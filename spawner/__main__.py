"""``python -m spawner gpus``: the admin CLI (see `spawner.admin.gpus_cli`)."""

from __future__ import annotations

import sys

from .admin.gpus_cli import main

USAGE = "usage: python -m spawner gpus [--json] [--inventory GPUS]"


def run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n\nCommands:\n  gpus  which user holds which GPU (gpus --help for more)")
        return 0 if argv else 2
    if argv[0] != "gpus":
        print(f"python -m spawner: unknown command {argv[0]!r}; try 'gpus'.", file=sys.stderr)
        return 2
    return main(argv[1:], prog="python -m spawner gpus")


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
