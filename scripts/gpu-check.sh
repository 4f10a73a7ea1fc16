#!/usr/bin/env bash
# Device-machine check of the GPU server extension (status vs nvidia-smi, sampler cost, full
# verification on the GPU). Needs python3 with torch and nvidia-ml-py; jupyter_server is not
# needed. Wheels for anything missing may travel in .whl/ and are installed to /tmp/site.
# Exit status: 0 all good, 1 something failed, 2 no GPU on this machine (it says why).
# Usage: bash scripts/gpu-check.sh [--json FILE] [--verify-timeout S] [--cpu-seconds S]
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || { echo "Installing the wheels in .whl/ failed." >&2; exit 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

for module in torch pynvml; do
    "$PYTHON" -c "import $module" 2>/dev/null ||
        echo "Note: $PYTHON cannot import $module; the check reports what that leaves." >&2
done
# The whole check stays well under 5 minutes: verification is capped at 240 s inside.
exec timeout 290 "$PYTHON" -m tests.device.gpucheck "$@"
