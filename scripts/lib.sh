# Shared, idempotent set-up steps for scripts/up.sh (the product) and scripts/test.sh (the tests).
# Sourced, not run. Every step checks before it acts, so running it twice changes nothing.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$repo/.venv}
log() { printf '\033[1m[cudaspawner]\033[0m %s\n' "$*" >&2; }

apt_install() {  # packages...
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_system_packages() {  # extra packages...
  local pkgs=(docker.io debootstrap ca-certificates git "$@")
  command -v python3 >/dev/null || pkgs+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || pkgs+=(python3-venv)
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
  apt_install "${pkgs[@]}"
}

# Starts dockerd when none answers. Sets STARTED_DOCKERD=1 when it did, so a caller that
# must stop only what it started can do so. Extra arguments go to dockerd.
STARTED_DOCKERD=
ensure_dockerd() {
  if docker info >/dev/null 2>&1; then return; fi
  log "starting dockerd $*"
  mkdir -p /var/log
  nohup dockerd "$@" >/var/log/cudaspawner-dockerd.log 2>&1 &
  echo $! >/run/cudaspawner-dockerd.pid
  STARTED_DOCKERD=1
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 0.5; done
  log "dockerd did not come up; see /var/log/cudaspawner-dockerd.log"; tail -20 /var/log/cudaspawner-dockerd.log >&2
  return 1
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

ensure_proxy() {
  command -v configurable-http-proxy >/dev/null && return
  log "npm install -g configurable-http-proxy"
  npm install -g --silent configurable-http-proxy >/dev/null 2>&1
}

ensure_venv() {  # extras (e.g. hub,notebook,test)
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -U pip
  fi
  local stamp="$VENV/.cudaspawner-$1" want
  want=$(cat "$repo/pyproject.toml" | sha256sum | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing cudaspawner[$1] into $VENV"
    "$VENV/bin/pip" install -q -e "$repo[$1]"
    echo "$want" >"$stamp"
  fi
}

ensure_network() {  # name
  docker network inspect "$1" >/dev/null 2>&1 || docker network create "$1" >/dev/null
}
