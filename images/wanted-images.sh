#!/usr/bin/env bash
# Which single-user images this host should build: prints "cpu" or "all" (cpu + CUDA).
#
#   CUDASPAWNER_IMAGES=auto (default)  all on a host with an NVIDIA GPU (`nvidia-smi -L`) whose
#                                      Docker can hand it to containers (NVIDIA Container
#                                      Toolkit); cpu otherwise
#   CUDASPAWNER_IMAGES=cpu | all       as given
#
# On a GPU host without the toolkit it says on stderr what to install, and prints cpu: the
# CUDA image would build, but no container could use a GPU.
set -euo pipefail

images=${CUDASPAWNER_IMAGES:-auto}
case $images in
  cpu|all) echo "$images"; exit 0 ;;
  auto) ;;
  *) echo "CUDASPAWNER_IMAGES is '$images'; use auto (the default), cpu or all." >&2; exit 2 ;;
esac

if ! nvidia-smi -L >/dev/null 2>&1; then echo cpu; exit 0; fi
if command -v nvidia-container-cli >/dev/null || command -v nvidia-ctk >/dev/null \
  || docker info --format '{{ json .Runtimes }}' 2>/dev/null | grep -q '"nvidia"'; then
  echo all
  exit 0
fi
cat >&2 <<'MSG'
This host has NVIDIA GPUs, but Docker cannot hand them to containers: the NVIDIA Container
Toolkit is missing. Install it from NVIDIA's apt repository (see
https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html):
  apt-get install -y nvidia-container-toolkit && nvidia-ctk runtime configure --runtime=docker
then restart Docker and run scripts/up.sh again. Carrying on with the CPU image only.
MSG
echo cpu
