#!/usr/bin/env bash
# Unit tests of the GPU panel's data-to-view logic (vitest), after a type check of the
# TypeScript sources and tests. Exits non-zero on any failure. About 10 s once node_modules
# exists; the first run installs it from the npm registry (about a minute).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$repo/.venv}
# jlpm comes with jupyterlab; a Node from PyPI (scripts/lib.sh, ensure_node) lies in the venv.
export PATH="$VENV/node/bin:$VENV/bin:$PATH"
cd "$repo/nbextension/frontend"
# --immutable: the lockfile is the truth; a stale one fails here rather than drifting.
timeout 600 jlpm install --immutable >/dev/null
timeout 300 jlpm typecheck
CI=1 timeout 300 jlpm test
