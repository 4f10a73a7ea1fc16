#!/bin/sh
# The one install recipe shared by the CPU image and the PyTorch-CUDA image, so the two
# stay twins: the same user, the same Jupyter packages, the same notebook extension.
#
#   install-singleuser.sh deps TORCH_PYTHON CONTEXT [EXTRA_REQUIREMENT...]  (build stage)
#   install-singleuser.sh project PYTHON CONTEXT                           (build stage)
#   install-singleuser.sh user                                             (final stage)
#
# `deps` makes the Jupyter environment /opt/venv from TORCH_PYTHON, the interpreter of the
# torch layer underneath, with --system-site-packages: the venv sees torch (and its
# nvidia-* libraries) where the layer put them and never holds a copy of its own.
set -eu

NB_USER=${NB_USER:-jovyan}
NB_UID=${NB_UID:-1000}
NB_GID=${NB_GID:-100}

case "$1" in
deps)
  # Jupyter at the hub's version, above the torch layer, below the project.
  torch_py=$2; ctx=$3; shift 3
  "$torch_py" -m venv --system-site-packages /opt/venv
  py=/opt/venv/bin/python
  # Behind a TLS-re-signing proxy pip needs the host's CA bundle. It is only ever present
  # in this build stage; the final image copies the environment, not the bundle.
  if [ -s "$ctx/host-ca.crt" ]; then export PIP_CERT="$ctx/host-ca.crt"; fi
  : "${JUPYTERHUB_VERSION:?JUPYTERHUB_VERSION must match the hub's version}"
  # Bytecode is compiled at install and kept: without it a non-root user, who cannot
  # write into the environment, recompiles on every start.
  "$py" -m pip install --no-cache-dir --disable-pip-version-check \
    "jupyterhub==$JUPYTERHUB_VERSION" -r "$ctx/requirements-singleuser.txt" "$@"
  ;;
project)
  # The light layer that changes with every commit: the project with its notebook extra.
  py=$2; ctx=$3
  if [ -s "$ctx/host-ca.crt" ]; then export PIP_CERT="$ctx/host-ca.crt"; fi
  "$py" -m pip install --no-cache-dir --disable-pip-version-check \
    --find-links "$ctx/project" "cudaspawner[notebook]"
  # Start-up speed (README, performance). rfc3987-syntax builds a grammar at import
  # (1.1 s on 2 cores), pulled in through jupyter_events -> jsonschema's format checkers,
  # only to check the "iri" format, which no schema we ship uses. jupyter-lsp has no
  # language server to talk to in this image.
  "$py" -m pip uninstall -y -q rfc3987-syntax
  "$(dirname "$py")/jupyter" server extension disable --sys-prefix jupyter_lsp >/dev/null 2>&1
  # No "get Jupyter news?" prompt that phones out of a site's network on first start.
  "$(dirname "$py")/jupyter" labextension disable --level=sys_prefix \
    "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1
  # Fail the build now, not at the first spawn, if something does not import.
  "$py" -c "import jupyterhub.singleuser, jupyterlab, notebook, nbextension"
  ;;
user)
  getent group "$NB_GID" >/dev/null || groupadd -g "$NB_GID" users
  if ! getent passwd "$NB_UID" >/dev/null; then
    useradd -m -s /bin/bash -u "$NB_UID" -g "$NB_GID" "$NB_USER"
  fi
  home=$(getent passwd "$NB_UID" | cut -d: -f6)
  mkdir -p "$home"
  chown "$NB_UID:$NB_GID" "$home"
  ;;
*)
  echo "usage: $0 deps|project PYTHON CONTEXT [REQ...] | user" >&2; exit 2 ;;
esac
