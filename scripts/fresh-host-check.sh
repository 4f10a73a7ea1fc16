#!/usr/bin/env bash
# Fresh-host check: the README's two commands, `bash scripts/up.sh` then `bash scripts/test.sh`,
# on a bare Debian bookworm, and each step's time. Run it before resolving a set-up change.
# Not part of CI: it installs everything from the registries and builds the images (tens of minutes).
#
# The "host" is the project's own Debian base (debootstrap of images/base/packages.txt), made
# the root of its own mount, UTS and PID namespaces (unshare, then pivot_root: not a chroot, so
# that `docker exec` finds containers as on a real host) inside its own network namespace, which
# reaches the package registries through this machine (veth pair + MASQUERADE). Its Docker engine
# is the one up.sh installs there, with its own data root, exec root, socket and pid file (all
# inside the bare root) and its own cgroup parent. Nothing of this machine goes in: no packages,
# wheels, Node, pip configuration or environment variables; only the project's committed tree
# (git archive), DNS servers, and the CA certificates this machine trusts beyond Debian's own set
# (HTTPS here is re-signed by a proxy; a host on this network would have that CA in its store too).
# Privileged containers do not start on these machines, so Docker-in-Docker is not an option.
#
#   scripts/fresh-host-check.sh            (as root)
#
# Environment:
#   FHC_DIR            work folder (default /var/tmp/cudaspawner-fhc), removed afterwards;
#                      the pristine debootstrap is kept as $FHC_DIR.base-<hash>.tar for the next run
#   FHC_KEEP=1         keep the root afterwards (to look inside; remove it by running again)
#   FHC_REF            git revision to check (default HEAD: committed work only)
#   FHC_TEST_ARGS      arguments handed to test.sh (pytest's), e.g. "-x -q"
#   FHC_CPU_IMAGE_ONLY=1   sets CUDASPAWNER_IMAGES=cpu in the root: up.sh and test.sh build no
#                      CUDA image (7 GB; tests that need it then say so)
#   FHC_CPU_WHEELHOUSE a folder of wheels handed to the root as the site's CPU wheelhouse
#                      (/var/cache/cudaspawner/wheelhouse/cpu there): the air-gapped way to a CPU
#                      torch, for networks where the PyTorch CPU index cannot be reached (ours)
#   DEBIAN_MIRROR      debootstrap mirror (default: the first URI in apt's sources)
# The result (date, revision, each step's time and exit status) goes to stdout and to
# $FHC_DIR.result; each step's log to $FHC_DIR.logs/.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
FHC_DIR=${FHC_DIR:-/var/tmp/cudaspawner-fhc}
FHC_REF=${FHC_REF:-HEAD}
root=$FHC_DIR/root
logs=$FHC_DIR.logs
result=$FHC_DIR.result
NETNS=cudaspawner-fhc
VETH_HOST=fhc-host VETH_NS=fhc-ns
SUBNET=10.231.77.0/30 HOST_IP=10.231.77.1 NS_IP=10.231.77.2
CGROUP_PARENT=cudaspawner-fhc
TAG="cudaspawner-fhc"  # iptables comment: the rules this script added, and only those

log() { printf '\033[1m[fresh-host]\033[0m %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "Run this as root: it creates a root file system, a network namespace and NAT rules."
for tool in debootstrap unshare nsenter ip iptables git python3; do
  command -v "$tool" >/dev/null || die "$tool is missing on this machine (apt-get install it)."
done

# --- tear-down: everything below is undone here, whatever happened ---------------------------
inner_pid=
reported=
teardown() {
  local rc=$? t0
  t0=$(date +%s)
  set +e
  if [ -n "$inner_pid" ] && kill -0 "$inner_pid" 2>/dev/null; then
    # unshare --kill-child: the namespace's init dies, and the kernel ends every process in it.
    kill "$inner_pid"; wait "$inner_pid" 2>/dev/null
  fi
  while iptables -t nat -D POSTROUTING -s "$SUBNET" ! -o "$VETH_HOST" -j MASQUERADE \
    -m comment --comment "$TAG" 2>/dev/null; do :; done
  while iptables -D FORWARD -i "$VETH_HOST" -j ACCEPT -m comment --comment "$TAG" 2>/dev/null; do :; done
  while iptables -D FORWARD -o "$VETH_HOST" -j ACCEPT -m comment --comment "$TAG" 2>/dev/null; do :; done
  ip link del "$VETH_HOST" 2>/dev/null
  ip netns del "$NETNS" 2>/dev/null
  # The check's containers ran under their own cgroup parent; their (empty) cgroups remain.
  find /sys/fs/cgroup -depth -type d -path "*/$CGROUP_PARENT*" -exec rmdir {} + 2>/dev/null
  cp "$root/var/log/cudaspawner-dockerd.log" "$logs/dockerd.log" 2>/dev/null
  if [ -z "${FHC_KEEP:-}" ] && [ -d "$root" ]; then
    # The mounts lived in the check's own mount namespace; never delete through one that leaked.
    if grep -q " $root[/ ]" /proc/self/mounts; then
      log "mounts remain under $root; not deleting it (see /proc/self/mounts)"
    else
      rm -rf --one-file-system "$FHC_DIR"
    fi
  fi
  [ -n "$reported" ] && printf '  %-12s %5ss  ok\n' teardown $(($(date +%s) - t0)) | tee -a "$result"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# A leftover from an interrupted run is ours to clear (same names, same folder).
ip netns del "$NETNS" 2>/dev/null || true
ip link del "$VETH_HOST" 2>/dev/null || true
if [ -d "$root" ]; then
  grep -q " $root[/ ]" /proc/self/mounts && die "mounts remain under $root from an earlier run."
  rm -rf --one-file-system "$root"
fi
mkdir -p "$root" "$logs"
rm -f "$logs"/*.log

declare -A secs status
step_order=()
record() { step_order+=("$1"); secs[$1]=$2; status[$1]=$3; }
timed() {  # name command...: run, log, record its time
  local name=$1 t0 rc=0; shift
  log "$name ..."
  t0=$(date +%s)
  "$@" >"$logs/$name.log" 2>&1 || rc=$?
  record "$name" $(($(date +%s) - t0)) "$rc"
  [ "$rc" = 0 ] || { tail -30 "$logs/$name.log" >&2; die "$name failed (exit $rc); log: $logs/$name.log"; }
}

# --- 1. a bare bookworm from the project's own base ---------------------------------------
make_root() {
  local m h
  m=$("$repo/images/debian-mirror.sh")
  # The debootstrap result is kept (pristine, as a tar) for the next run with the same inputs.
  h=$(printf 'bookworm minbase %s %s' "$m" "$(cat "$repo/images/base/packages.txt")" | sha256sum | cut -c1-16)
  if [ -f "$FHC_DIR.base-$h.tar" ]; then
    echo "reusing the bare root of an earlier run ($FHC_DIR.base-$h.tar)"
    tar -C "$root" -xf "$FHC_DIR.base-$h.tar"
  else
    debootstrap --variant=minbase --include="$(paste -sd, "$repo/images/base/packages.txt")" \
      bookworm "$root" "$m"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    rm -f "$FHC_DIR".base-*.tar
    tar -C "$root" -cf "$FHC_DIR.base-$h.tar.part" . && mv "$FHC_DIR.base-$h.tar.part" "$FHC_DIR.base-$h.tar"
  fi
  # A Debian install's usual sources: the release, its updates and security updates.
  local sec
  sec=$(grep -hsE '^URIs:.*security' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | head -1)
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
    "$m" "$m" "${sec:-http://deb.debian.org/debian-security}" >"$root/etc/apt/sources.list"
  # The site's extra CAs: the certificates this machine trusts that Debian's set does not have.
  python3 - /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt" \
    "$root/usr/local/share/ca-certificates" <<'PY'
import re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
host, debian, out = (open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3])
known = {c.replace("\n", "") for c in pem.findall(debian)}
extra = [c for c in pem.findall(host) if c.replace("\n", "") not in known]
for i, c in enumerate(extra):
    open(f"{out}/site-ca-{i}.crt", "w").write(c + "\n")
print(f"{len(extra)} site CA certificate(s) added")
PY
  chroot "$root" update-ca-certificates
  mkdir -p "$root/root/cudaspawner" "$root/etc/docker"
  git -C "$repo" archive "$FHC_REF" | tar -x -C "$root/root/cudaspawner"
  # The engine up.sh installs there runs beside this machine's: its containers get their own
  # cgroup parent, and the veth's MTU (this machine's uplink's).
  printf '{"cgroup-parent": "/%s", "mtu": %s}\n' "$CGROUP_PARENT" "$mtu" >"$root/etc/docker/daemon.json"
  if [ -n "${FHC_CPU_WHEELHOUSE:-}" ]; then
    mkdir -p "$root/var/cache/cudaspawner/wheelhouse/cpu"
    cp "$FHC_CPU_WHEELHOUSE"/*.whl "$root/var/cache/cudaspawner/wheelhouse/cpu/"
  fi
  echo "fresh-bookworm" >"$root/etc/hostname"
  # As Debian's installer writes it: the host name resolves (the hub's proxy URL uses it).
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tfresh-bookworm\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$root/etc/hosts"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
}

# --- 2. its own network namespace, reaching the registries through this machine -----------
make_network() {
  ip netns add "$NETNS"
  ip link add "$VETH_HOST" mtu "$mtu" type veth peer name "$VETH_NS" mtu "$mtu"
  ip link set "$VETH_NS" netns "$NETNS"
  ip addr add "$HOST_IP/30" dev "$VETH_HOST"
  ip link set "$VETH_HOST" up
  ip -n "$NETNS" addr add "$NS_IP/30" dev "$VETH_NS"
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" link set "$VETH_NS" up
  ip -n "$NETNS" route add default via "$HOST_IP"
  echo 1 >/proc/sys/net/ipv4/ip_forward
  iptables -t nat -A POSTROUTING -s "$SUBNET" ! -o "$VETH_HOST" -j MASQUERADE -m comment --comment "$TAG"
  # Docker sets FORWARD's policy to DROP: let this veth's traffic through, ahead of its rules.
  iptables -I FORWARD -i "$VETH_HOST" -j ACCEPT -m comment --comment "$TAG"
  iptables -I FORWARD -o "$VETH_HOST" -j ACCEPT -m comment --comment "$TAG"
  local ns
  ns=$(awk '$1 == "nameserver" {print $2; exit}' /etc/resolv.conf)
  nsenter --net="/run/netns/$NETNS" python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 53), timeout=5)
s.close()
socket.getaddrinfo("deb.debian.org", 80)' "$ns" \
    || die "The namespace cannot reach this machine's DNS server ($ns): the check needs it."
}

# --- 3. inside: the README's two commands, timed there ------------------------------------
write_inner() {
  cat >"$FHC_DIR/inner.sh" <<INNER
#!/bin/bash
# PID 1 of the check's namespaces: mounts the bare root's file systems, then runs the two
# commands in it with an empty environment. Its exit ends every process in the namespace.
set -u
root=$root
mount --make-rprivate /
# The root must be a mount point: dockerd's chrootarchive (docker import, layer extraction)
# remounts "/" and fails with EINVAL on a plain directory.
mount --bind "\$root" "\$root"
hostname fresh-bookworm
mount -t proc proc "\$root/proc"
mount -t sysfs sysfs "\$root/sys"   # a fresh sysfs: this namespace's network devices
mount --rbind /sys/fs/cgroup "\$root/sys/fs/cgroup"  # else dockerd: "Devices cgroup isn't mounted"
mount --rbind /dev "\$root/dev"
mount -t tmpfs -o mode=755 tmpfs "\$root/run"
# The bare root becomes this namespace's "/" (pivot_root, not chroot), as on a real host.
# With a chroot, the namespace's root stays this machine's "/": \`docker exec\` joins a
# container's mount namespace at that root, not at the container's, and fails ("chdir to cwd
# ... no such file or directory"). This machine's tree is then detached from the namespace.
mkdir -p "\$root/.host"
cd "\$root" && pivot_root . .host && cd / || exit 1
umount -l /.host && rmdir /.host
in_root() {
  /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb \\
    LANG=C.UTF-8 HOSTNAME=fresh-bookworm PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    ${FHC_CPU_IMAGE_ONLY:+CUDASPAWNER_IMAGES=cpu} \\
    bash -c "cd /root/cudaspawner && \$1"
}
step() {  # name command
  local t0=\$(date +%s) rc=0
  echo "@@ start \$1 \$(date -u +%H:%M:%S)"
  in_root "\$2" || rc=\$?
  echo "@@ step \$1 \$(( \$(date +%s) - t0 )) \$rc"
  return \$rc
}
step up.sh "bash scripts/up.sh" || exit 1
# A user opens the URL up.sh printed: the hub's API answers there.
step hub-answers "python3 -c 'import ssl, urllib.request as u; c = ssl._create_unverified_context(); print(u.urlopen(\"https://127.0.0.1:8443/hub/api/\", context=c, timeout=10).read().decode())'" || exit 1
step test.sh "bash scripts/test.sh ${FHC_TEST_ARGS:-}" || exit 1
INNER
}

mtu=$(ip -o link show "$(ip route show default | awk '{print $5; exit}')" | grep -o 'mtu [0-9]*' | awk '{print $2}')
started=$(date -u '+%Y-%m-%d %H:%M UTC')
rev=$(git -C "$repo" rev-parse --short "$FHC_REF")
timed bare-root make_root
timed network make_network
write_inner
log "up.sh, then test.sh, in the bare root (logs: $logs/inner.log)"
nsenter --net="/run/netns/$NETNS" unshare --mount --uts --pid --fork --kill-child \
  bash "$FHC_DIR/inner.sh" >"$logs/inner.log" 2>&1 &
inner_pid=$!
inner_rc=0
wait "$inner_pid" || inner_rc=$?
inner_pid=
while read -r _ _ name s rc; do record "$name" "$s" "$rc"; done < <(grep '^@@ step ' "$logs/inner.log")

{
  echo "fresh-host check, $started, revision $rev${FHC_CPU_IMAGE_ONLY:+ (CUDASPAWNER_IMAGES=cpu: no CUDA image)}"
  [ -z "${FHC_CPU_WHEELHOUSE:-}" ] || echo "  CPU wheelhouse handed in: $(cd "$FHC_CPU_WHEELHOUSE" && ls -- *.whl | paste -sd' ')"
  for name in "${step_order[@]}"; do
    printf '  %-12s %5ss  %s\n' "$name" "${secs[$name]}" \
      "$([ "${status[$name]}" = 0 ] && echo ok || echo "FAILED (exit ${status[$name]})")"
  done
  [ "$inner_rc" = 0 ] && echo "  result: green" || echo "  result: FAILED (see $logs/inner.log)"
} | tee "$result"
reported=1
[ "$inner_rc" = 0 ] || tail -40 "$logs/inner.log" >&2
exit "$inner_rc"
