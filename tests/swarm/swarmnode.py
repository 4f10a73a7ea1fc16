"""A Docker engine of its own, in its own network namespace: one node of a test swarm.

The shared test engine is used by other suites (and maybe a production hub): a `swarm init`
there would change it for everyone. Each node here is a second `dockerd` with its own data
root, exec root, socket, pidfile and cgroup parent, inside a network namespace joined to
this machine by a veth pair (FIELD-NOTES: the two-node swarm traps). `stop()` undoes all of
it, and is safe to call twice or after a half-made start.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

TAG = "cudaspawner-swarm-test"  # iptables comment: the rules this helper added, and only those
ROOT = Path("/var/lib/cudaspawner-swarm-test")
RUN = Path("/run/cudaspawner-swarm-test")

# PID 1 of the node's mount/UTS namespaces: a fresh sysfs (this namespace's network devices)
# with the host's cgroups bound into it (else "Devices cgroup isn't mounted"), a resolv.conf
# that fails fast (the host's DNS server is out of reach; each image lookup would wait
# ~20 s), then dockerd.
_INNER = r"""
set -eu
mount --make-rprivate /
mkdir -p "$RUNDIR/cg"
mount --rbind /sys/fs/cgroup "$RUNDIR/cg"
mount -t sysfs sysfs /sys
mount --move "$RUNDIR/cg" /sys/fs/cgroup
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > "$RUNDIR/resolv.conf"
mount --bind "$RUNDIR/resolv.conf" /etc/resolv.conf
hostname "$NODENAME"
exec dockerd "$@"
"""


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


@dataclass
class SwarmNode:
    """One engine: `index` picks its names and its /30 (10.213.<index>.0)."""

    index: int
    gpus: tuple[str, ...] = ()
    name: str = ""
    process: subprocess.Popen | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or f"cswnode{self.index}"
        self.netns = f"csw{self.index}"
        self.veth_host, self.veth_ns = f"csw{self.index}h", f"csw{self.index}n"
        self.host_ip, self.ip = f"10.213.{self.index}.1", f"10.213.{self.index}.2"
        self.data_root = ROOT / self.name
        self.run_dir = RUN / self.name
        self.socket = self.run_dir / "docker.sock"
        self.log_path = RUN / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=120)

    # --- life cycle ---------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        self.stop()  # a leftover of an interrupted run with the same names is ours to clear
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        # A configuration of its own: the host's /etc/docker/daemon.json (a GPU host's
        # runtimes, a site's cgroup-parent or hosts) would clash with the flags below, and
        # dockerd refuses to start when a setting is given both ways.
        (self.run_dir / "daemon.json").write_text("{}\n")
        _sh("ip", "netns", "add", self.netns)
        _sh("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns)
        _sh("ip", "link", "set", self.veth_ns, "netns", self.netns)
        _sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.veth_host)
        _sh("ip", "link", "set", self.veth_host, "up")
        _sh("ip", "-n", self.netns, "addr", "add", f"{self.ip}/30", "dev", self.veth_ns)
        _sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        _sh("ip", "-n", self.netns, "link", "set", self.veth_ns, "up")
        _sh("ip", "-n", self.netns, "route", "add", "default", "via", self.host_ip)
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
        # The host engine sets FORWARD's policy to DROP: node-to-node traffic (two nodes)
        # crosses this machine, so let these veths through, ahead of its rules.
        for way in ("-i", "-o"):
            _sh("iptables", "-I", "FORWARD", way, self.veth_host, "-j", "ACCEPT",
                "-m", "comment", "--comment", TAG)  # fmt: skip
        args = [
            f"--config-file={self.run_dir / 'daemon.json'}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.run_dir / 'exec'}",
            f"--host={self.url}",
            f"--pidfile={self.run_dir / 'docker.pid'}",
            f"--cgroup-parent=/{TAG}-{self.name}",
            "--add-runtime=nvidia=runc",
            "--storage-driver=overlay2",
            *(f"--node-generic-resource=NVIDIA-GPU={g}" for g in self.gpus),
        ]
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{self.netns}",
                "unshare",
                "--mount",
                "--uts",
                "--fork",
                "--kill-child",
                "bash",
                "-c",
                _INNER,
                "inner",
                *args,
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUNDIR": str(self.run_dir), "NODENAME": self.name},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd of {self.name} exited:\n{self.log()[-3000:]}")
            try:
                self.client().ping()
                return
            except Exception:
                time.sleep(0.3)
        raise RuntimeError(f"dockerd of {self.name} did not answer in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Everything `start` made, undone; errors ignored (parts may never have been made)."""
        if self.socket.exists():
            try:  # leave the swarm first: a manager's raft state would outlive the engine
                self.client().swarm.leave(force=True)
            except Exception as e:  # a half-made engine: the namespace goes anyway
                print(f"{self.name}: leaving the swarm failed: {e}")
        if self.process is not None and self.process.poll() is None:
            # The engine stops its containers; --kill-child then ends the namespace.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None
        for way in ("-i", "-o"):
            while _sh("iptables", "-D", "FORWARD", way, self.veth_host, "-j", "ACCEPT",
                      "-m", "comment", "--comment", TAG, check=False).returncode == 0:  # fmt: skip
                pass
        _sh("ip", "link", "del", self.veth_host, check=False)
        _sh("ip", "netns", "del", self.netns, check=False)
        subprocess.run(
            f"find /sys/fs/cgroup -depth -type d -path '*/{TAG}-{self.name}*' -exec rmdir {{}} +",
            shell=True,
            capture_output=True,
        )
        shutil.rmtree(self.run_dir, ignore_errors=True)


def load_image(source: docker.DockerClient, node: SwarmNode, image: str) -> None:
    """Copy `image` from the test engine into the node's engine, only when it is missing."""
    target = node.client()
    wanted = source.images.get(image).id
    try:
        if target.images.get(image).id == wanted:
            return
    except docker.errors.ImageNotFound:
        pass
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    subprocess.run(["docker", "-H", node.url, "load", "-q"], stdin=save.stdout, check=True,
                   capture_output=True)  # fmt: skip
    save.wait()
