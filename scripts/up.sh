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
# The CPU image always; the PyTorch 2.9 / CUDA 12.8 image (about 8 GB, minutes to build)
# where it can run: a host with an NVIDIA GPU and the NVIDIA Container Toolkit, or when asked
# (CUDASPAWNER_IMAGES=all; images/wanted-images.sh decides, and says what a GPU host lacks).
images=$("$repo/images/wanted-images.sh")
PYTHON="$VENV/bin/python" "$repo/images/build.sh" cpu
if [ "$images" = all ]; then
  PYTHON="$VENV/bin/python" "$repo/images/build.sh" pytorch-cuda
fi
# The user containers' network is the hub's to make (labelled, isolating): not made here.

mkdir -p "$DATA"; chmod 700 "$DATA"
if [ -f "$DATA/jupyterhub.pid" ] && kill -0 "$(cat "$DATA/jupyterhub.pid")" 2>/dev/null; then
  log "stopping the running hub"
  kill "$(cat "$DATA/jupyterhub.pid")"; sleep 2
fi
log "starting JupyterHub (log: $DATA/jupyterhub.log)"
# The hub logs to stderr. Its stdout carries only the first admin's generated password,
# which must not land in the log: it goes to a 0600 file that is read once below and removed.
first_start="$DATA/.first-start-output"
(umask 077; : >"$first_start")
# setsid + nohup: the hub outlives this script and its terminal; $! is the hub's own pid.
cd "$DATA"
CUDASPAWNER_DATA="$DATA" setsid nohup "$VENV/bin/jupyterhub" -f "$repo/jupyterhub_config.py" \
  </dev/null >>"$first_start" 2>"$DATA/jupyterhub.log" &
echo $! >"$DATA/jupyterhub.pid"
cd "$repo"
for _ in $(seq 60); do
  grep -q "JupyterHub is now running" "$DATA/jupyterhub.log" 2>/dev/null && break
  kill -0 "$(cat "$DATA/jupyterhub.pid")" 2>/dev/null || { tail -30 "$DATA/jupyterhub.log"; exit 1; }
  sleep 1
done
grep -q "JupyterHub is now running" "$DATA/jupyterhub.log" || { tail -30 "$DATA/jupyterhub.log"; exit 1; }
# Where people open the hub: its public name (the config writes it), else the proxy's address.
url=$(cat "$DATA/public-url" 2>/dev/null || true)
[ -n "$url" ] || url=$(grep -o "JupyterHub is now running at [^ ]*" "$DATA/jupyterhub.log" | tail -1 | awk '{print $NF}')
url=${url/:\/\/:/:\/\/$(hostname -f 2>/dev/null || hostname):}  # "https://:8443" -> a real host
password=$(grep -o "password: [^ ]*" "$first_start" | tail -1 | awk '{print $2}' || true)
rm -f "$first_start"
cat <<MSG

  JupyterHub is up: open ${url:-https://<this host>:8443/}
  (the certificate is self-signed unless you gave your own: see the README's security section;
  each user's server is served on its own name under it: docs/setup.md, "Names")
MSG
host=${url#*://}; host=${host%%[:/]*}
case $host in
  *.localhost|localhost|"") ;;
  *) cat <<MSG
  Each user's server is served on <user>.$host: DNS must send both $host and *.$host to
  this machine, and the certificate must name both (docs/setup.md, "Names").
MSG
  ;;
esac
if [ -n "$password" ]; then
  cat <<MSG
  Log in as "admin" with the password generated on first start: $password
  It is shown only now and stored only as a hash: change it at /hub/change-password.
MSG
else
  echo "  Log in as \"admin\" with the password shown when the hub first started."
fi
cat <<MSG
  Users sign up at /hub/signup; approve them at /hub/authorize.
  Hub log: $DATA/jupyterhub.log   Stop: kill \$(cat $DATA/jupyterhub.pid)

MSG
