#!/usr/bin/env bash
# Set up everything (Docker engine, proxy, Python packages, images) and start the hub.
# Idempotent: run it again to restart the hub after a change.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DATA=${CUDASPAWNER_DATA:-/var/lib/cudaspawner}
ensure_system_packages
ensure_dockerd
ensure_proxy
ensure_venv hub
PYTHON="$VENV/bin/python" "$repo/images/build.sh" all
ensure_network "${CUDASPAWNER_NETWORK:-cudaspawner}"

mkdir -p "$DATA"; chmod 700 "$DATA"
if [ -f "$DATA/jupyterhub.pid" ] && kill -0 "$(cat "$DATA/jupyterhub.pid")" 2>/dev/null; then
  log "stopping the running hub"
  kill "$(cat "$DATA/jupyterhub.pid")"; sleep 2
fi
log "starting JupyterHub (log: $DATA/jupyterhub.log)"
(cd "$DATA" && CUDASPAWNER_DATA="$DATA" nohup "$VENV/bin/jupyterhub" -f "$repo/jupyterhub_config.py" \
  >"$DATA/jupyterhub.log" 2>&1 & echo $! >"$DATA/jupyterhub.pid")
for _ in $(seq 60); do
  grep -q "JupyterHub is now running" "$DATA/jupyterhub.log" 2>/dev/null && break
  kill -0 "$(cat "$DATA/jupyterhub.pid")" 2>/dev/null || { tail -30 "$DATA/jupyterhub.log"; exit 1; }
  sleep 1
done
grep -q "JupyterHub is now running" "$DATA/jupyterhub.log" || { tail -30 "$DATA/jupyterhub.log"; exit 1; }
url=$(grep -o "JupyterHub is now running at [^ ]*" "$DATA/jupyterhub.log" | tail -1 | awk '{print $NF}')
cat <<MSG

  JupyterHub is up: open ${url:-http://<this host>:8000/}
  Log in as any user name with the password in $DATA/user-password
  (user "admin" logs in with $DATA/admin-password and is an admin). Hub log: $DATA/jupyterhub.log
  Stop: kill \$(cat $DATA/jupyterhub.pid)

MSG
