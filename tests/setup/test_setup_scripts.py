"""The set-up steps of scripts/lib.sh on the hosts users have, each in a throwaway root.

Every scenario runs in a container made from the project's own Debian base (a bare bookworm):
a GPU host with Docker CE (stood in for by a local dummy `docker-ce` package whose `docker` and
`dockerd` answer like a real engine), a host with no engine, and a host with no usable Node.
Containers carry the label below and are removed afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("BASE_IMAGE", "cudaspawner/debian:bookworm")
LABEL = "org.cudaspawner.test=setup-scripts"
# The site's trust store: on these machines HTTPS is re-signed by a proxy whose CA is in the
# host's bundle; a real host behind such a proxy has it in its system store the same way.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")

FAKE_DOCKER = """\
#!/bin/sh
# Stand-in for Docker CE's client: `docker info` answers while the fake engine runs.
case "$1" in
  info)
    if [ ! -e /run/fake-dockerd.running ]; then
      echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1
    fi
    case "$*" in
      *Runtimes*) cat /run/fake-dockerd.runtimes 2>/dev/null || echo '{"runc":{"path":"runc"}}' ;;
      *) echo "Server Version: 99.0.0-fake" ;;
    esac ;;
  *) echo "fake docker $*"; exit 0 ;;
esac
"""
FAKE_DOCKERD = """\
#!/bin/sh
# Stand-in for Docker CE's engine: records how it was started, then "runs" until stopped;
# on SIGHUP it reloads the runtimes of /etc/docker/daemon.json, as dockerd does.
echo "$@" >/run/fake-dockerd.args
echo $$ >/var/run/docker.pid
echo '{"runc":{"path":"runc"}}' >/run/fake-dockerd.runtimes
touch /run/fake-dockerd.running
reload() {
  python3 -c 'import json; r = json.load(open("/etc/docker/daemon.json")).get("runtimes", {}); \\
r["runc"] = {"path": "runc"}; print(json.dumps(r))' >/run/fake-dockerd.runtimes
  echo reload >>/run/fake-dockerd.reloads
}
trap reload HUP
trap 'rm -f /run/fake-dockerd.running /var/run/docker.pid; exit 0' TERM INT
while :; do sleep 1; done
"""


def build_deb(out: Path, name: str, control: str, files: dict[str, str]) -> Path:
    """A minimal binary package, built with dpkg-deb like equivs would."""
    root = out / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 5:99.0.0-fake\nArchitecture: all\n"
        f"Maintainer: cudaspawner tests <tests@localhost>\n{control}"
        f"Description: fake {name} for cudaspawner's set-up tests\n"
    )
    for path, text in files.items():
        f = root / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        f.chmod(0o755)
    deb = out / f"{name}.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


class Root:
    """A bare bookworm container with scripts/ mounted read-only at /src/scripts."""

    def __init__(self, volumes: list[str]):
        if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
            pytest.fail(f"{BASE_IMAGE} is missing: build it with `images/build.sh base`.")
        self.name = f"cudaspawner-setup-test-{uuid.uuid4().hex[:8]}"
        mounts = [f"-v{REPO / 'scripts'}:/src/scripts:ro"]
        for v in volumes:
            mounts.append(f"-v{v}")
        docker(
            "run",
            "-d",
            "--rm",
            "--name",
            self.name,
            "--label",
            LABEL,
            *mounts,
            BASE_IMAGE,
            "sleep",
            "infinity",
        )

    def sh(self, script: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run bash in the root with lib.sh sourced, as up.sh and test.sh do."""
        body = "set -euo pipefail; source /src/scripts/lib.sh\n" + textwrap.dedent(script)
        return docker(
            "exec",
            "-e",
            "VENV=/tmp/venv",
            self.name,
            "bash",
            "-c",
            body,
            check=False,
            timeout=timeout,
        )

    def installed(self, package: str) -> bool:
        r = docker("exec", self.name, "dpkg-query", "-W", "-f=${Status}", package, check=False)
        return r.stdout == "install ok installed"

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


@pytest.fixture(scope="module")
def docker_ce_host(tmp_path_factory):
    """A bare bookworm with the fake Docker CE (client and engine packages) installed."""
    debs = tmp_path_factory.mktemp("debs")
    build_deb(debs, "docker-ce-cli", "", {"/usr/bin/docker": FAKE_DOCKER})
    # Docker CE's own package declares the conflict too.
    build_deb(
        debs,
        "docker-ce",
        "Depends: docker-ce-cli\nConflicts: docker.io\n",
        {"/usr/bin/dockerd": FAKE_DOCKERD},
    )
    root = Root([f"{debs}:/debs:ro", f"{HOST_CA}:/etc/ssl/certs/ca-certificates.crt:ro"])
    try:
        r = docker(
            "exec", root.name, "sh", "-c", "dpkg -i /debs/docker-ce-cli.deb /debs/docker-ce.deb"
        )
        assert root.installed("docker-ce"), r.stdout + r.stderr
        yield root
    finally:
        root.remove()


def test_setup_keeps_a_running_docker_ce_and_uses_it(docker_ce_host):
    docker("exec", docker_ce_host.name, "touch", "/run/fake-dockerd.running")  # the site's engine
    r = docker_ce_host.sh("""
        ensure_system_packages
        ensure_dockerd
        echo "started=${STARTED_DOCKERD}"
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert docker_ce_host.installed("docker-ce") and docker_ce_host.installed("docker-ce-cli")
    assert not docker_ce_host.installed("docker.io")
    assert "started=\n" in r.stdout  # the running engine was used, no second one started
    assert (
        docker(
            "exec", docker_ce_host.name, "test", "-e", "/run/fake-dockerd.args", check=False
        ).returncode
        != 0
    )
    # The package step did run apt for what was missing.
    assert docker_ce_host.installed("debootstrap") and docker_ce_host.installed("git")


def test_setup_starts_the_installed_docker_ce_engine_when_it_is_stopped(docker_ce_host):
    docker("exec", docker_ce_host.name, "rm", "-f", "/run/fake-dockerd.running")
    r = docker_ce_host.sh("""
        ensure_system_packages
        ensure_dockerd --add-runtime nvidia=runc
        echo "started=${STARTED_DOCKERD}"
        cat /run/fake-dockerd.args
        stop_started_dockerd
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "started=1" in r.stdout and "--add-runtime nvidia=runc" in r.stdout
    assert docker_ce_host.installed("docker-ce") and not docker_ce_host.installed("docker.io")


def test_a_running_engine_gets_the_test_runtime_by_a_reload_not_a_restart(docker_ce_host):
    name = docker_ce_host.name
    docker("exec", "-d", name, "dockerd")  # the site's engine, started its own way
    docker_ce_host.sh("for _ in $(seq 50); do [ -s /var/run/docker.pid ] && break; sleep 0.1; done")
    pid = docker("exec", name, "cat", "/var/run/docker.pid").stdout.strip()
    try:
        script = """
            ensure_dockerd --add-runtime nvidia=runc
            echo "started=${STARTED_DOCKERD}"
            docker info --format '{{json .Runtimes}}'
        """
        r = docker_ce_host.sh(script)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "started=\n" in r.stdout and '"nvidia": {"path": "runc"}' in r.stdout
        conf = docker("exec", name, "cat", "/etc/docker/daemon.json").stdout
        assert json.loads(conf)["runtimes"]["nvidia"] == {"path": "runc"}
        # The same engine, reloaded once: its containers (the hub's users) kept running.
        assert docker("exec", name, "cat", "/var/run/docker.pid").stdout.strip() == pid
        again = docker_ce_host.sh(script)
        assert "adding the runtime" not in again.stderr
        assert docker("exec", name, "cat", "/run/fake-dockerd.reloads").stdout == "reload\n"
    finally:
        docker("exec", name, "sh", "-c", f"kill {pid}; rm -f /etc/docker/daemon.json", check=False)


def test_apt_helper_refuses_an_install_that_would_remove_docker_ce(docker_ce_host):
    # Debian's real docker.io, from the mirror: "Conflicts: docker-ce, docker-ce-cli".
    r = docker_ce_host.sh("apt_install docker.io")
    assert r.returncode != 0
    assert "Not installing docker.io: apt would remove docker-ce" in r.stderr, r.stderr
    assert "never removes packages" in r.stderr
    assert docker_ce_host.installed("docker-ce") and not docker_ce_host.installed("docker.io")


def test_docker_io_is_wanted_only_where_no_engine_is_installed():
    root = Root([])
    try:
        bare = root.sh("system_packages_wanted")
        assert bare.returncode == 0, bare.stderr
        assert "docker.io" in bare.stdout.split()
        # Docker's static binaries (or any dockerd on PATH) count as an installed engine.
        docker(
            "exec",
            root.name,
            "sh",
            "-c",
            "printf '#!/bin/sh\\n' >/usr/local/bin/dockerd && chmod +x /usr/local/bin/dockerd",
        )
        static = root.sh("system_packages_wanted")
        assert "docker.io" not in static.stdout.split()
    finally:
        root.remove()


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("v18.20.4", False),
        ("v20.18.1", False),
        ("v20.19.0", True),
        ("v21.7.3", False),
        ("v22.11.0", False),
        ("v22.12.0", True),
        ("v24.11.1", True),
        ("", False),
        ("nonsense", False),
    ],
)
def test_node_version_check_follows_vite_engines(version, ok):
    r = subprocess.run(
        ["bash", "-c", f'source "{REPO}/scripts/lib.sh"; node_version_ok "$1"', "_", version],
        check=False,
    )
    assert (r.returncode == 0) is ok


def test_bare_bookworm_gets_a_node_that_runs_the_panel_tests_and_the_proxy():
    frontend = REPO / "nbextension" / "frontend"
    if not (frontend / "node_modules" / "vitest").is_dir():
        pytest.fail("nbextension/frontend/node_modules is missing: run `jlpm install` there first.")
    root = Root(
        [f"{frontend}:/src/frontend:ro", f"{HOST_CA}:/etc/ssl/certs/ca-certificates.crt:ro"]
    )
    try:
        r = root.sh(
            """
            ensure_node
            command -v node; node --version
            ensure_proxy
            command -v configurable-http-proxy; configurable-http-proxy --version
            cp -a /src/frontend /tmp/frontend && cd /tmp/frontend
            CI=1 node node_modules/vitest/vitest.mjs run
        """,
            timeout=400,
        )
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
        lines = r.stdout.splitlines()
        assert lines[0] == "/tmp/venv/node/bin/node"  # bookworm has no Node: the PyPI one
        assert lines[1].startswith("v24."), lines[1]
        # The hub's proxy, installed with that Node's npm, next to it in the venv, and runs.
        assert lines[2] == "/tmp/venv/node/bin/configurable-http-proxy"
        assert lines[3][:1].isdigit(), lines[3]
        assert " passed" in r.stdout
    finally:
        root.remove()
