#!/usr/bin/env bash
# Run DockerSpawner 14.0.0's own published test suite against CUDADockerSpawner: the
# drop-in promise, checked. See tests/upstream/README.md for the result and the deselections.
#
#   tests/upstream/run.sh              the suite against CUDADockerSpawner (entry point cuda-docker)
#   tests/upstream/run.sh --vanilla    the same suite against DockerSpawner itself (proves the harness)
#   tests/upstream/run.sh ... -k cpu   further arguments go to pytest
#
# Needs a running Docker engine and configurable-http-proxy (scripts/test.sh provides both).
# Reaches only PyPI (the first time) and the local engine: never GitHub, never an image registry.
# The suite wants jupyterhub 5.5 (with 6.x its named-server tests fail for DockerSpawner too),
# so it gets a virtual environment of its own, built once and kept until its inputs change.
#
# Environment:
#   UPSTREAM_VENV   where that environment lives (default: tests/upstream/.venv, gitignored)
#   PYTHON3         the interpreter it is made from (default: python3)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=${UPSTREAM_VENV:-$here/.venv}
dockerspawner_version=14.0.0
suite=$venv/dockerspawner-$dockerspawner_version-tests
# The versions DockerSpawner 14.0.0's suite is known to pass with (vanilla: all but the one
# test that needs Docker Hub). A changed pin or pyproject.toml updates the environment.
pins=(jupyterhub==5.5.4 pytest==8.3.5 pytest-asyncio==0.25.3 "dockerspawner==$dockerspawner_version")
# Images the suite names, made locally (nothing can be pulled here). The single-user image
# carries the same jupyterhub as the hub under test.
singleuser=cudaspawner-upstream/singleuser:5.5.4
base_image=${BASE_IMAGE:-cudaspawner/debian:bookworm}
alias_label=org.cudaspawner.upstream-tests

log() { printf '\033[1m[upstream]\033[0m %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

check_prerequisites() {
  docker info >/dev/null 2>&1 \
    || die "No Docker engine answers. Start one (scripts/test.sh does) and run this again."
  command -v configurable-http-proxy >/dev/null \
    || die "configurable-http-proxy is not on PATH: npm install -g configurable-http-proxy"
}

ensure_venv() {
  local want stamp=$venv/.upstream-stamp
  want=$( (printf '%s\n' "${pins[@]}"; cat "$repo/pyproject.toml") | sha256sum | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv (${pins[*]}, cudaspawner[hub]); a few minutes, once"
    "${PYTHON3:-python3}" -m venv "$venv"
  else
    log "updating $venv: the pins or pyproject.toml changed"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}" -e "$repo[hub]"
  echo "$want" >"$stamp"
}

ensure_suite() {
  [ -f "$suite/test_dockerspawner.py" ] && return
  # The suite ships in dockerspawner's sdist (its wheel has no tests). The upstream
  # conftest.py is not in the sdist: tests/upstream/upstream_adapter.py is our own.
  local dl
  dl=$(mktemp -d)
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$dl" "dockerspawner==$dockerspawner_version"
  mkdir -p "$suite"
  tar -xzf "$dl/dockerspawner-$dockerspawner_version.tar.gz" -C "$suite" \
    --strip-components=2 "dockerspawner-$dockerspawner_version/tests"
  rm -rf "$dl"
}

# Tag $1 under each further name, through a one-line image that carries our label, so that a
# name someone else made is never taken over: such a name is left alone and used as it is.
alias_image() {  # source names...
  local src=$1 src_id name have
  shift
  src_id=$(docker image inspect -f '{{.Id}}' "$src")
  local todo=()
  for name in "$@"; do
    if ! docker image inspect "$name" >/dev/null 2>&1; then todo+=("$name"); continue; fi
    have=$(docker image inspect -f "{{ index .Config.Labels \"$alias_label\" }}" "$name")
    if [ -z "$have" ] || [ "$have" = "<no value>" ]; then
      log "$name exists and was not made by this runner: using it as it is"
    elif [ "$have" != "$src_id" ]; then
      todo+=("$name")
    fi
  done
  [ ${#todo[@]} -eq 0 ] && return
  local tags=()
  for name in "${todo[@]}"; do tags+=(-t "$name"); done
  log "tagging $src as ${todo[*]}"
  printf 'FROM %s\nLABEL %s=%s\n' "$src" "$alias_label" "$src_id" \
    | DOCKER_BUILDKIT=0 docker build -q "${tags[@]}" - >/dev/null
}

ensure_images() {
  # images/build.sh skips the build when the inputs (jupyterhub version included) are unchanged.
  PYTHON="$venv/bin/python" PLAIN_IMAGE="$singleuser" BASE_IMAGE="$base_image" \
    "$repo/images/build.sh" plain
  # DockerSpawner's default image for jupyterhub 5.5, and the two test_allowed_image starts.
  alias_image "$singleuser" quay.io/jupyterhub/singleuser:5.5 \
    quay.io/jupyterhub/singleuser:4.0 quay.io/jupyterhub/singleuser:4
  # test_post_start runs `sh -c "sleep 300"` and `ls /` in it: any image with a shell will do.
  alias_image "$base_image" busybox:1.29.1
}

main() {
  local spawner=cuda-docker
  if [ "${1:-}" = "--vanilla" ]; then spawner=docker; shift; fi
  check_prerequisites
  ensure_venv
  ensure_suite
  ensure_images
  log "DockerSpawner $dockerspawner_version's suite against the '$spawner' spawner"
  # MockHub writes a cookie secret into the working directory: keep it in the ignored venv.
  cd "$venv"
  # -p loads our adapter as a plugin (it is not a conftest.py, so the project's own suite
  # never picks it up); -c keeps the project's pytest settings out of this run.
  PYTHONPATH="$here" exec "$venv/bin/python" -m pytest -c "$here/pytest.ini" --rootdir "$here" \
    -p upstream_adapter --upstream-spawner="$spawner" \
    "$suite/test_dockerspawner.py" "$suite/test_deprecations.py" "$here/adapted_tests.py" "$@"
}
main "$@"
