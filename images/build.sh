#!/usr/bin/env bash
# Build cudaspawner's images with no registry: a debootstrapped Debian base, then the
# CPU single-user image on it. Each image carries a label with a hash of its inputs;
# a build whose inputs have not changed is skipped.
#
#   images/build.sh [base|cpu|plain|pytorch-cuda|all]   (default: all)
#   (pytorch-cuda needs a registry with the official PyTorch image; the rest need none)
#
# Environment:
#   PYTHON             python whose jupyterhub version the image matches (default: .venv/bin/python)
#   DEBIAN_MIRROR      debootstrap mirror (default: the first URI in apt's sources)
#   HOST_CA_BUNDLE     CA bundle handed to pip inside the build stage
#                      (default: /etc/ssl/certs/ca-certificates.crt when present)
#   FORCE_REBUILD=1    rebuild even when the input hash matches
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
PYTHON=${PYTHON:-$repo/.venv/bin/python}
BASE_IMAGE=${BASE_IMAGE:-cudaspawner/debian:bookworm}
CPU_IMAGE=${CPU_IMAGE:-cudaspawner/cpu:latest}
PLAIN_IMAGE=${PLAIN_IMAGE:-cudaspawner/plain:latest}
CUDA_IMAGE=${CUDA_IMAGE:-cudaspawner/pytorch-cuda:2.9-cuda12}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
LABEL=org.cudaspawner.inputs-hash
work=$here/.build
export DOCKER_BUILDKIT=0  # the engine here has no BuildKit; the classic builder does multi-stage

log() { printf '[images] %s\n' "$*" >&2; }

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  [ -n "$uri" ] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -1)
  echo "${uri:-http://deb.debian.org/debian}"
}

current_hash() { docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

up_to_date() {  # image hash
  [ -z "${FORCE_REBUILD:-}" ] && [ "$(current_hash "$1")" = "$2" ]
}

hash_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

build_base() {
  local m h
  m=$(mirror)
  h=$(printf 'bookworm minbase %s %s' "$m" "$(cat "$here/base/packages.txt")" | sha256sum | cut -c1-16)
  if up_to_date "$BASE_IMAGE" "$h"; then log "$BASE_IMAGE is up to date"; return; fi
  command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install -y debootstrap"; exit 1; }
  log "debootstrap bookworm from $m (about a minute)"
  local root=$work/rootfs
  rm -rf "$root"; mkdir -p "$root"
  debootstrap --variant=minbase --include="$(paste -sd, "$here/base/packages.txt")" \
    bookworm "$root" "$m" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import \
    -c 'CMD ["/bin/bash"]' -c "LABEL $LABEL=$h" - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
  log "built $BASE_IMAGE"
}

wheelhouse() {
  # The air-gapped way: everything the image takes that is not on an index the build can
  # reach goes in here. torch: a CPU build (the CUDA image brings its own); the project wheel.
  local wh=$here/wheelhouse
  mkdir -p "$wh"
  if ! ls "$wh"/torch-"$TORCH_VERSION"*.whl >/dev/null 2>&1; then
    log "downloading torch==$TORCH_VERSION into the wheelhouse"
    "$PYTHON" -m pip download -q --no-deps -d "$wh" "torch==$TORCH_VERSION"
  fi
  rm -f "$wh"/cudaspawner-*.whl
  "$PYTHON" -m pip wheel -q --no-deps -w "$wh" "$repo" >/dev/null
}

jupyterhub_version() { "$PYTHON" -c 'import jupyterhub; print(jupyterhub.__version__)'; }

# Stage the build context: Dockerfile, the shared install script, wheels, the CA bundle.
stage_context() {  # name dockerfile-dir
  local ctx=$work/$1
  rm -rf "$ctx"; mkdir -p "$ctx/wheels" "$ctx/project"
  cp "$here/$2/Dockerfile" "$here/install-singleuser.sh" "$here/requirements-singleuser.txt" "$ctx/"
  case $1 in
    cpu|pytorch-cuda)
      cp "$here"/wheelhouse/cudaspawner-*.whl "$ctx/project/"
      [ "$1" = cpu ] && cp "$here"/wheelhouse/torch-*.whl "$ctx/wheels/" ;;
  esac
  local ca=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
  if [ -f "$ca" ]; then cp "$ca" "$ctx/host-ca.crt"; else : >"$ctx/host-ca.crt"; fi
  echo "$ctx"
}

context_hash() {  # ctx jupyterhub-version base-hash
  (cd "$1" && find . -type f ! -name host-ca.crt -print0 | sort -z | xargs -0 sha256sum; echo "$2 $3") \
    | sha256sum | cut -c1-16
}

build_singleuser() {  # name dockerfile-dir image
  local jhv ctx h
  jhv=$(jupyterhub_version)
  ctx=$(stage_context "$1" "$2")
  h=$(context_hash "$ctx" "$jhv" "$(current_hash "$BASE_IMAGE")")
  if up_to_date "$3" "$h"; then log "$3 is up to date"; return; fi
  log "building $3 (jupyterhub $jhv)"
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "JUPYTERHUB_VERSION=$jhv" \
    --label "$LABEL=$h" -t "$3" "$ctx" >"$work/$1.log" 2>&1 || { tail -40 "$work/$1.log" >&2; exit 1; }
  # Dangling layers of the previous build are of no use to anyone.
  docker image prune -f >/dev/null 2>&1 || true
  log "built $3"
}

main() {
  mkdir -p "$work"
  local what=${1:-all}
  case $what in
    base) build_base ;;
    cpu) build_base; wheelhouse; build_singleuser cpu cpu "$CPU_IMAGE" ;;
    plain) build_base; build_singleuser plain plain "$PLAIN_IMAGE" ;;
    pytorch-cuda) wheelhouse; build_singleuser pytorch-cuda pytorch-cuda "$CUDA_IMAGE" ;;
    all) build_base; wheelhouse; build_singleuser cpu cpu "$CPU_IMAGE" ;;
    *) echo "usage: $0 [base|cpu|plain|pytorch-cuda|all]" >&2; exit 2 ;;
  esac
}
main "$@"
