#!/usr/bin/env bash
# Build cudaspawner's images with no image registry: a debootstrapped Debian base, a torch
# layer from a local wheelhouse, and the single-user images on it, all from one Dockerfile
# (images/singleuser) through one install recipe (images/install-singleuser.sh).
#
#   images/build.sh [base|cpu|pytorch-cuda|plain|all] [--from-registry]   (default: all)
#
#   cpu            cudaspawner/cpu:latest              torch as a CPU build
#   pytorch-cuda   cudaspawner/pytorch-cuda:2.9-cuda12.8   torch 2.9.1 + CUDA 12.8, cuDNN 9, NCCL
#   all            base, cpu and pytorch-cuda
#   --from-registry  pytorch-cuda on the official pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime
#                    (pulled) instead of the local torch layer
#
# Every image carries a label with a hash of its inputs; a build whose inputs have not
# changed is skipped. The wheelhouse lives outside the repository (it survives a fresh
# clone) and is keyed by the names of its wheels: gigabytes are never hashed or copied into a
# build context, and torch sits in a layer of its own below Jupyter and the project.
#
# Environment:
#   PYTHON                   python whose jupyterhub version the images match (.venv/bin/python)
#   CUDASPAWNER_WHEELHOUSE   wheelhouse root, with cpu/ and cuda/ (/var/cache/cudaspawner/wheelhouse)
#   CPU_TORCH_VERSION        torch release of the CPU image (2.13.0)
#   CPU_TORCH_INDEX          where the CPU build of torch comes from
#                            (https://download.pytorch.org/whl/cpu; when it cannot be reached,
#                            pip's own configuration, e.g. a local find-links folder)
#   CUDA_TORCH_VERSION       torch release of the CUDA image (2.9.1, whose PyPI wheel is CUDA 12.8)
#   CUDA_TORCH_INDEX         index of the CUDA build (https://pypi.org/simple)
#   PYTORCH_IMAGE            the registry path's image (pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime)
#   DEBIAN_MIRROR            debootstrap mirror (default: the first URI in apt's sources)
#   HOST_CA_BUNDLE           CA bundle handed to pip in the Jupyter build stage only
#                            (default: /etc/ssl/certs/ca-certificates.crt when present)
#   FORCE_REBUILD=1          rebuild even when the input hash matches
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
PYTHON=${PYTHON:-$repo/.venv/bin/python}
BASE_IMAGE=${BASE_IMAGE:-cudaspawner/debian:bookworm}
CPU_IMAGE=${CPU_IMAGE:-cudaspawner/cpu:latest}
PLAIN_IMAGE=${PLAIN_IMAGE:-cudaspawner/plain:latest}
CUDA_IMAGE=${CUDA_IMAGE:-cudaspawner/pytorch-cuda:2.9-cuda12.8}
CPU_TORCH_LAYER=cudaspawner/torch-layer:cpu
CUDA_TORCH_LAYER=cudaspawner/torch-layer:cuda12.8
WHEELHOUSE=${CUDASPAWNER_WHEELHOUSE:-/var/cache/cudaspawner/wheelhouse}
CPU_TORCH_VERSION=${CPU_TORCH_VERSION:-${TORCH_VERSION:-2.13.0}}
CPU_TORCH_INDEX=${CPU_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
CUDA_TORCH_VERSION=${CUDA_TORCH_VERSION:-2.9.1}
CUDA_TORCH_INDEX=${CUDA_TORCH_INDEX:-https://pypi.org/simple}
CUDA_VERSION=12.8  # what torch $CUDA_TORCH_VERSION's PyPI wheel is built for
PYTORCH_IMAGE=${PYTORCH_IMAGE:-pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime}
FROM_REGISTRY=${FROM_REGISTRY:-}
LABEL=org.cudaspawner.inputs-hash
OWNER_LABEL=org.cudaspawner.built-by=images/build.sh
work=$here/.build
export DOCKER_BUILDKIT=0  # the engine here has no BuildKit; the classic builder does multi-stage

log() { printf '[images] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

current_hash() { docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

up_to_date() {  # image hash
  [ -z "${FORCE_REBUILD:-}" ] && [ "$(current_hash "$1")" = "$2" ]
}

build_base() {
  local m h
  m=$("$here/debian-mirror.sh")
  h=$(printf 'bookworm minbase %s %s' "$m" "$(cat "$here/base/packages.txt")" | sha256sum | cut -c1-16)
  if up_to_date "$BASE_IMAGE" "$h"; then log "$BASE_IMAGE is up to date"; return; fi
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install -y debootstrap"
  log "debootstrap bookworm from $m (about a minute)"
  local root=$work/rootfs
  rm -rf "$root"; mkdir -p "$root"
  debootstrap --variant=minbase --include="$(paste -sd, "$here/base/packages.txt")" \
    bookworm "$root" "$m" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import \
    -c 'CMD ["/bin/bash"]' -c "LABEL $LABEL=$h" -c "LABEL $OWNER_LABEL" - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
  log "built $BASE_IMAGE"
}

# --- the wheelhouse ----------------------------------------------------------------------

wheel_requires_cuda() {  # wheel file: does its metadata require nvidia-* packages?
  "$PYTHON" - "$1" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    text = z.read(meta).decode()
needs = [l for l in text.splitlines() if l.startswith("Requires-Dist: nvidia-")]
sys.exit(0 if needs else 1)
PY
}

# Where no CPU build of torch can be had (a site that reaches PyPI only, whose torch for
# Linux is the CUDA build), the CPU image is the CUDA image under the CPU image's name: torch
# runs on the CPU there, and a GPU host stores the layer once. The marker keeps later runs
# from downloading again; delete it to try for a CPU build once more.
NO_CPU_TORCH=$WHEELHOUSE/cpu/NO-CPU-TORCH

cpu_torch_reachable() { [ ! -f "$NO_CPU_TORCH" ]; }

torch_from_pip_is_cuda() {  # would pip's configured sources give a CUDA build of torch?
  "$PYTHON" -m pip install -q --dry-run --ignore-installed --report "$work/cpu-torch.json" \
    "torch==$CPU_TORCH_VERSION" >/dev/null 2>&1 || return 1
  "$PYTHON" - "$work/cpu-torch.json" <<'PY'
import json, sys
names = [i["metadata"]["name"].lower() for i in json.load(open(sys.argv[1]))["install"]]
sys.exit(0 if any(n.startswith("nvidia-") for n in names) else 1)
PY
}

no_cpu_torch() {  # what was found: the marker, and the one line that says so
  echo "Only a CUDA build of torch was reachable ($1); the CPU image is the CUDA image" \
    "under its name. Delete this file to try for a CPU build again." >"$NO_CPU_TORCH"
  log "No CPU build of torch is reachable here (PyPI's torch for Linux is the CUDA build):" \
    "$CPU_IMAGE is built as the CUDA image (torch $CUDA_TORCH_VERSION runs on the CPU; on a GPU" \
    "host it costs no extra disk). A +cpu wheel in $WHEELHOUSE/cpu, or a reachable" \
    "CPU_TORCH_INDEX, gives a small CPU image (delete $NO_CPU_TORCH first)."
}

fill_cpu_wheelhouse() {
  local wh=$WHEELHOUSE/cpu torch
  mkdir -p "$wh"
  cpu_torch_reachable || return 0
  if ! ls "$wh"/torch-"$CPU_TORCH_VERSION"*.whl >/dev/null 2>&1; then
    log "downloading a CPU build of torch==$CPU_TORCH_VERSION into $wh"
    # The PyTorch CPU index first (PyPI's own torch for Linux is a CUDA build), PyPI for the
    # dependencies; where that index cannot be reached, whatever pip is configured with.
    "$PYTHON" -m pip download -q -d "$wh" --retries 1 --timeout 20 --index-url "$CPU_TORCH_INDEX" \
      --extra-index-url https://pypi.org/simple "torch==$CPU_TORCH_VERSION" 2>"$work/cpu-download.log" \
      || { log "$CPU_TORCH_INDEX is out of reach; trying pip's configured sources"
           # Asked first what pip would take (metadata only): a CUDA build is gigabytes.
           if torch_from_pip_is_cuda; then
             no_cpu_torch "torch==$CPU_TORCH_VERSION from pip's sources"; return 0
           fi
           "$PYTHON" -m pip download -q -d "$wh" --no-deps "torch==$CPU_TORCH_VERSION"; }
  fi
  torch=$(ls "$wh"/torch-"$CPU_TORCH_VERSION"*.whl | head -1)
  if wheel_requires_cuda "$torch"; then
    rm -f "$wh"/*.whl
    no_cpu_torch "$(basename "$torch")"
    return 0
  fi
  # A site may hand in the torch wheel alone; the image's pip reads nothing but this folder,
  # so torch's dependencies are fetched once (from pip's configured index) if any is missing.
  if ! "$PYTHON" -m pip install -q --dry-run --ignore-installed --no-index --find-links "$wh" \
    "torch==$CPU_TORCH_VERSION" >/dev/null 2>&1; then
    log "adding torch's dependencies to $wh"
    "$PYTHON" -m pip download -q -d "$wh" --find-links "$wh" "torch==$CPU_TORCH_VERSION" \
      || die "$wh holds torch but not all its dependencies, and they cannot be downloaded here."
  fi
}

fill_cuda_wheelhouse() {
  local wh=$WHEELHOUSE/cuda torch
  mkdir -p "$wh"
  if ! ls "$wh"/torch-"$CUDA_TORCH_VERSION"-*.whl >/dev/null 2>&1; then
    log "downloading torch==$CUDA_TORCH_VERSION and its nvidia-*-cu12 wheels (about 3.8 GB) into $wh"
    "$PYTHON" -m pip download -q -d "$wh" --index-url "$CUDA_TORCH_INDEX" "torch==$CUDA_TORCH_VERSION"
  fi
  torch=$(ls "$wh"/torch-"$CUDA_TORCH_VERSION"-*.whl | head -1)
  wheel_requires_cuda "$torch" \
    || die "$(basename "$torch") is not a CUDA build of torch (it requires no nvidia-* package)."
}

wheel_names_hash() {  # dir: the wheels' names and sizes, never their gigabytes of content
  (cd "$1" && find . -maxdepth 1 -name '*.whl' -printf '%f %s\n' | sort) | sha256sum | cut -c1-16
}

# Serves a wheelhouse on the Docker bridge for one build; sets WHEELS_URL, WHEELS_HOST.
WHEEL_SERVER_PID=
serve_wheels() {  # dir
  local gw port
  # Build containers run on the default bridge and reach the host at its gateway.
  gw=$(docker network inspect bridge -f '{{ range .IPAM.Config }}{{ .Gateway }}{{ end }}' 2>/dev/null || true)
  [ -n "$gw" ] || gw=$( { ip -4 -o addr show docker0 2>/dev/null || true; } | awk '{print $4}' | cut -d/ -f1 | head -1)
  [ -n "$gw" ] || gw=172.17.0.1
  port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
  "$PYTHON" -m http.server "$port" --bind "$gw" --directory "$1" >"$work/wheel-server.log" 2>&1 &
  WHEEL_SERVER_PID=$!
  "$PYTHON" - "http://$gw:$port/" <<'PY' || die "could not serve the wheelhouse on $gw (log: $work/wheel-server.log)"
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
  WHEELS_URL="http://$gw:$port/"; WHEELS_HOST=$gw
}
stop_wheel_server() {
  if [ -n "$WHEEL_SERVER_PID" ]; then kill "$WHEEL_SERVER_PID" 2>/dev/null || true; fi
  WHEEL_SERVER_PID=
}
trap stop_wheel_server EXIT

build_torch_layer() {  # flavour tag requirement
  local wh=$WHEELHOUSE/$1 h
  h=$( (cat "$here/torch/Dockerfile"; echo "$3 $(wheel_names_hash "$wh") $(current_hash "$BASE_IMAGE")") \
    | sha256sum | cut -c1-16)
  if up_to_date "$2" "$h"; then log "$2 is up to date"; return; fi
  log "building $2: $3 from $wh"
  local t0=$SECONDS ctx=$work/torch-$1
  rm -rf "$ctx"; mkdir -p "$ctx"; cp "$here/torch/Dockerfile" "$ctx/"
  local old; old=$(image_id "$2")
  serve_wheels "$wh"
  docker build -q --force-rm --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "WHEELS_URL=$WHEELS_URL" \
    --build-arg "WHEELS_HOST=$WHEELS_HOST" --build-arg "TORCH_REQUIREMENT=$3" \
    --label "$LABEL=$h" --label "$OWNER_LABEL" -t "$2" "$ctx" >"$work/torch-$1.log" 2>&1 \
    || { stop_wheel_server; tail -40 "$work/torch-$1.log" >&2; die "the torch layer $2 did not build"; }
  stop_wheel_server
  retire_later "$old" "$2"
  log "built $2 in $((SECONDS - t0)) s"
}

# --- the single-user images --------------------------------------------------------------

jupyterhub_version() { "$PYTHON" -c 'import jupyterhub; print(jupyterhub.__version__)'; }

project_wheel() {
  rm -rf "$work/project"; mkdir -p "$work/project"
  "$PYTHON" -m pip wheel -q --no-deps -w "$work/project" "$repo" >/dev/null
}

# The small build context: Dockerfile, install recipe, check, requirements, project, CA.
stage_context() {  # name dockerfile-dir
  local ctx=$work/$1
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp "$here/$2/Dockerfile" "$here/requirements-singleuser.txt" "$ctx/"
  if [ "$2" = singleuser ]; then
    cp "$here/install-singleuser.sh" "$here/image_check.py" "$ctx/"
    mkdir -p "$ctx/project"; cp "$work"/project/*.whl "$ctx/project/"
  fi
  local ca=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
  if [ -f "$ca" ]; then cp "$ca" "$ctx/host-ca.crt"; else : >"$ctx/host-ca.crt"; fi
  echo "$ctx"
}

context_hash() {  # ctx extra...
  local ctx=$1; shift
  (cd "$ctx" && find . -type f ! -name host-ca.crt -print0 | sort -z | xargs -0 sha256sum; echo "$*") \
    | sha256sum | cut -c1-16
}

image_id() { docker image inspect -f '{{ .Id }}' "$1" 2>/dev/null || true; }

# Images this run replaced, removed at the end (newest kind first: an image before the
# layer it was built on). Never a prune: other builds may be running on this engine, and an
# image a container still uses stays (docker rmi refuses it).
RETIRED=()
retire_later() { if [ -n "$1" ] && [ "$1" != "$(image_id "$2")" ]; then RETIRED=("$1" "${RETIRED[@]}"); fi; }
retire() {
  local id
  for id in "${RETIRED[@]}"; do docker rmi "$id" >/dev/null 2>&1 || true; done
  RETIRED=()
}

# The versions the image's check recorded, as OCI labels on the image (a metadata-only step).
label_versions() {  # image hash
  local json args=()
  json=$(docker run --rm --network none --entrypoint cat "$1" /opt/cudaspawner/versions.json)
  while IFS='=' read -r key value; do
    args+=(--label "$key=$value")
  done < <(PYTHONPATH="$repo" "$PYTHON" - "$json" <<'PY'
import json, sys
v = json.loads(sys.argv[1])
none = lambda x: x if x else "none"
print(f"org.opencontainers.image.title=cudaspawner single-user ({v['flavour']})")
print(f"org.opencontainers.image.version={v['cudaspawner']}")
for key in ("torch", "cuda", "cudnn", "nccl", "python", "jupyterlab", "jupyterhub"):
    print(f"org.cudaspawner.{key}={none(v[key])}")
print(f"org.cudaspawner.version={v['cudaspawner']}")
# What the hub checks a host against before starting it (spawner/gpu/cuda_compat.py).
from spawner.gpu.cuda_compat import ARCHS_LABEL, MIN_DRIVER_LABEL, min_driver
print(f"{MIN_DRIVER_LABEL}={none(min_driver(v['cuda']))}")
print(f"{ARCHS_LABEL}={none(' '.join(v.get('cuda_archs') or []))}")
PY
)
  printf 'FROM %s\n' "$1" | docker build -q --force-rm "${args[@]}" --label "$LABEL=$2" --label "$OWNER_LABEL" \
    --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" -t "$1" - \
    >/dev/null 2>>"$work/labels.log" || die "could not label $1 (log: $work/labels.log)"
  # The hub checks a host against these before a start: an image without them is not done.
  local key
  for key in org.cudaspawner.min-driver org.cudaspawner.cuda-archs; do
    [ -n "$(docker image inspect -f "{{ with index .Config.Labels \"$key\" }}{{ . }}{{ end }}" "$1")" ] ||
      die "$1 lacks the label $key (images/image_check.py, label_versions)"
  done
}

build_singleuser() {  # flavour image torch-layer-image python
  local flavour=$1 image=$2 layer=$3 py=$4 jhv ctx h expect_torch expect_cuda
  jhv=$(jupyterhub_version)
  ctx=$(stage_context "singleuser-$flavour" singleuser)
  h=$(context_hash "$ctx" "$jhv" "$flavour" "$(image_id "$layer")" "$py")
  if up_to_date "$image" "$h"; then log "$image is up to date"; return; fi
  if [ "$flavour" = cuda ]; then
    expect_torch=$CUDA_TORCH_VERSION; expect_cuda=$CUDA_VERSION
  else
    expect_torch=$CPU_TORCH_VERSION; expect_cuda=
  fi
  log "building $image on $layer (jupyterhub $jhv)"
  local t0=$SECONDS stage=cudaspawner/build-stage:$flavour old_image old_stage
  old_image=$(image_id "$image"); old_stage=$(image_id "$stage")
  local args=(--build-arg "TORCH_IMAGE=$layer" --build-arg "PYTHON=$py"
    --build-arg "JUPYTERHUB_VERSION=$jhv" --build-arg "TORCH_FLAVOUR=$flavour"
    --build-arg "EXPECT_TORCH=$expect_torch" --build-arg "EXPECT_CUDA=$expect_cuda")
  # The Jupyter build stage gets a name of its own: it stays the classic builder's cache,
  # so a project change re-runs only the project step, not the Jupyter install.
  { docker build -q --force-rm "${args[@]}" --target build -t "$stage" "$ctx" \
    && docker build -q --force-rm "${args[@]}" --label "$OWNER_LABEL" -t "$image" "$ctx"; } \
    >"$work/singleuser-$flavour.log" 2>&1 \
    || { tail -40 "$work/singleuser-$flavour.log" >&2; die "$image did not build (log: $work/singleuser-$flavour.log)"; }
  label_versions "$image" "$h"
  retire_later "$old_stage" "$stage"
  retire_later "$old_image" "$image"
  log "built $image in $((SECONDS - t0)) s"
}

build_plain() {
  local jhv ctx h
  jhv=$(jupyterhub_version)
  ctx=$(stage_context plain plain)
  h=$(context_hash "$ctx" "$jhv" "$(current_hash "$BASE_IMAGE")")
  if up_to_date "$PLAIN_IMAGE" "$h"; then log "$PLAIN_IMAGE is up to date"; return; fi
  log "building $PLAIN_IMAGE (jupyterhub $jhv)"
  docker build -q --force-rm --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "JUPYTERHUB_VERSION=$jhv" \
    --label "$LABEL=$h" --label "$OWNER_LABEL" -t "$PLAIN_IMAGE" "$ctx" >"$work/plain.log" 2>&1 \
    || { tail -40 "$work/plain.log" >&2; exit 1; }
  log "built $PLAIN_IMAGE"
}

build_cpu() {
  build_base
  fill_cpu_wheelhouse
  if ! cpu_torch_reachable; then
    build_cuda
    docker tag "$CUDA_IMAGE" "$CPU_IMAGE"
    log "$CPU_IMAGE is $CUDA_IMAGE (no CPU build of torch here; see $NO_CPU_TORCH)"
    return
  fi
  build_torch_layer cpu "$CPU_TORCH_LAYER" "torch==$CPU_TORCH_VERSION"
  project_wheel
  build_singleuser cpu "$CPU_IMAGE" "$CPU_TORCH_LAYER" python3
}

build_cuda() {
  project_wheel
  if [ -n "$FROM_REGISTRY" ]; then
    # A site with a registry: the official image is the torch layer (conda's Python).
    docker image inspect "$PYTORCH_IMAGE" >/dev/null 2>&1 || docker pull "$PYTORCH_IMAGE" \
      || die "cannot pull $PYTORCH_IMAGE; leave out --from-registry to build from the wheelhouse"
    build_singleuser cuda "$CUDA_IMAGE" "$PYTORCH_IMAGE" /opt/conda/bin/python
    return
  fi
  build_base
  fill_cuda_wheelhouse
  build_torch_layer cuda "$CUDA_TORCH_LAYER" "torch==$CUDA_TORCH_VERSION"
  build_singleuser cuda "$CUDA_IMAGE" "$CUDA_TORCH_LAYER" python3
}

main() {
  mkdir -p "$work"
  local what=all arg
  for arg in "$@"; do
    case $arg in
      --from-registry) FROM_REGISTRY=1 ;;
      base|cpu|pytorch-cuda|plain|all) what=$arg ;;
      *) echo "usage: $0 [base|cpu|pytorch-cuda|plain|all] [--from-registry]" >&2; exit 2 ;;
    esac
  done
  case $what in
    base) build_base ;;
    cpu) build_cpu ;;
    pytorch-cuda) build_cuda ;;
    plain) build_base; build_plain ;;
    all) build_cpu; cpu_torch_reachable && build_cuda ;;
  esac
  retire
}
main "$@"
