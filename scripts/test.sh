#!/usr/bin/env bash
# Set up everything the tests need and run the whole suite. Idempotent.
# Starts dockerd (with a stand-in runtime named "nvidia" pointing at runc, which the GPU
# allocation tests rely on) only when none is running, and stops only what it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# --fast: the pure tests only (no Docker engine, hub, browser or GPU; about a minute), in
# the environment a whole run made. Further arguments go to pytest.
if [ "${1:-}" = --fast ]; then
  shift
  ensure_venv hub,notebook,test
  "$VENV/bin/python" -c 'import torch' 2>/dev/null ||
    { log "The tests' CPU torch is not installed yet: run 'bash scripts/test.sh' once first."; exit 1; }
  cd "$repo"
  "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .
  exec "$VENV/bin/pytest" -p no:cacheprovider -q --lane=pure "$@"
fi

# chromium: the browser tests; libatomic1: Playwright's own Node driver links it (a bare
# bookworm lacks it); openssh-client: the SSH gateway's tests use the real client; iproute2:
# the Swarm tests give each extra engine a network namespace (`ip netns`, veth);
# libnss-myhostname: the tests' Python resolves hub.localhost and <user>.hub.localhost (the
# default deployment's names) to this machine, as browsers and curl do by themselves;
# postgresql: the GPU-hours record's tests run on a real PostgreSQL server as well.
ensure_system_packages chromium libatomic1 openssh-client iproute2 libnss-myhostname postgresql
trap 'stop_started_dockerd; stop_started_postgres' EXIT
ensure_dockerd --add-runtime nvidia=runc
ensure_postgres
ensure_proxy
ensure_venv hub,notebook,test
# Every image the tests run: the base, the CPU image and the PyTorch 2.9 / CUDA 12.8 image
# (the CUDA image's tests need no GPU; a first build takes minutes, later ones seconds).
# CUDASPAWNER_IMAGES=cpu builds the CPU image only, for a run of chosen tests: the CUDA
# image's own tests then fail, saying it is not built.
[ "${CUDASPAWNER_IMAGES:-all}" = cpu ] && images=cpu || images=all
PYTHON="$VENV/bin/python" "$repo/images/build.sh" "$images"
# The tests' own torch (the verification on the CPU) is the CPU build the CPU image took:
# PyPI's torch for Linux is a CUDA build of several GB. build.sh left it in the wheelhouse;
# where no CPU build could be had (NO-CPU-TORCH there), the CUDA build it used instead.
wheelhouse=${CUDASPAWNER_WHEELHOUSE:-/var/cache/cudaspawner/wheelhouse}
if [ -f "$wheelhouse/cpu/NO-CPU-TORCH" ]; then
  torch_wheels=$wheelhouse/cuda torch_version=${CUDA_TORCH_VERSION:-2.9.1}
else
  torch_wheels=$wheelhouse/cpu torch_version=${CPU_TORCH_VERSION:-2.13.0}
fi
"$VENV/bin/python" -c 'import torch' 2>/dev/null || "$VENV/bin/pip" install -q \
  --find-links "$torch_wheels" "torch==$torch_version"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
cd "$repo"
"$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .
# Chosen tests (arguments): one pytest run, as asked.
if [ $# -gt 0 ]; then
  exec "$VENV/bin/pytest" -p no:cacheprovider "$@"
fi
# The whole suite as lanes side by side (tests/conftest.py: LANES), most of a hub test being
# waiting: the engine lane (hubs with simulated GPUs, browser) in front; beside it the hubs
# that hold no GPU, under a container prefix of their own; and, one after the other, the
# pure tests, the Swarm tests (engines of their own) and DockerSpawner's own published
# suite against ours (tests/upstream/README.md). The slowest tests of each are listed.
lanes=$(mktemp -d)
lane() {
  local name=$1 rc=0
  shift
  "$@" >"$lanes/$name.log" 2>&1 || rc=$?
  echo "$rc" >"$lanes/$name.rc"
}
pytest=("$VENV/bin/pytest" -p no:cacheprovider -q --durations=10)
# Each lane has a time limit (`timeout`), so a hung lane fails with its log instead of
# holding CI to its own limit.
lane beside env CUDASPAWNER_TEST_PREFIX=jupybeside timeout 1500 "${pytest[@]}" --lane=beside &
beside_pid=$!
{
  lane pure timeout 600 "${pytest[@]}" --lane=pure
  lane swarm timeout 900 "${pytest[@]}" --lane=swarm
  lane upstream timeout 600 "$repo/tests/upstream/run.sh"
} &
others_pid=$!
set +e
timeout 1800 "$VENV/bin/pytest" -p no:cacheprovider --durations=25 --lane=engine
engine=$?
# The lanes' own PIDs: a bare `wait` would also wait for the dockerd that ensure_dockerd
# started in the background of this shell, which runs until the EXIT trap stops it.
wait "$beside_pid" "$others_pid"
set -e
failed=()
[ "$engine" -eq 0 ] || failed+=(engine)
for name in beside pure swarm upstream; do
  log "lane $name:"
  cat "$lanes/$name.log"
  [ "$(cat "$lanes/$name.rc" 2>/dev/null)" = 0 ] || failed+=("$name")
done
rm -rf "$lanes"
if [ ${#failed[@]} -gt 0 ]; then
  log "FAILED lanes: ${failed[*]}"
  exit 1
fi
log "all lanes passed"
