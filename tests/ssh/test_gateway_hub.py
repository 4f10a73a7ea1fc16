"""Issue 17 on the real hub, engine and gateway, driven by Debian's OpenSSH client.

The hub runs the default deployment (jupyterhub_config.py, so `configure_ssh` starts the
gateway as its service) with a stand-in GPU inventory: the engine's `nvidia` runtime is
runc here, so containers carry their devices in NVIDIA_VISIBLE_DEVICES but see no GPU.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import socket
import subprocess
import time

import asyncssh
import pytest
import requests

from spawner.ssh.keys import KeyStore
from tests.hubtools import (
    TEST_NETWORK,
    container_name,
    container_of,
    dump_docker_state,
    free_port,
    make_hub,
    remove_hub_leftovers,
)
from tests.ssh.sshtools import (
    SshTarget,
    make_key,
    user_image_with_sftp_server,
    wait_for_port,
    write_known_hosts,
)

pytestmark = [pytest.mark.docker, pytest.mark.hub]

if not shutil.which("ssh"):
    pytest.fail("These tests need Debian's OpenSSH client: apt-get install -y openssh-client")

# User names of this module only: containers are named after users (jupyter-<name>) on an
# engine other suites share, and a common name would meet another test's container.
GPUS = """
c.CUDADockerSpawner.gpu_inventory = [{"id": "GPU-a"}, {"id": "GPU-b"}]
c.CUDADockerSpawner.profiles = [{"slug": "gpu", "display_name": "GPU", "gpus": 1}]
c.CUDADockerSpawner.gpu_request_style = "runtime"
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, request):
    """A hub with the SSH gateway, sshada and sshbert running, sshdora with a key but no server."""
    import docker

    from spawner.host.deployment import ensure_network

    client = docker.from_env()
    ensure_network(client, TEST_NETWORK)
    image = user_image_with_sftp_server(client)
    tmp = tmp_path_factory.mktemp("ssh")
    port = port_no_hub_rule_accepts(client)
    hub = make_hub(
        tmp,
        GPUS,
        env={
            "CUDASPAWNER_SSH_PORT": str(port),
            # All addresses, as deployed: the host firewall must keep containers off it.
            "CUDASPAWNER_SSH_IP": "",
            "CUDASPAWNER_IMAGE": image,
        },
    )
    volumes = [f"cudaspawner-home-{u}" for u in ("sshada", "sshbert", "sshdora")]
    try:
        hub.start()
        wait_for_port(port)
        hub.api("POST", "users", json={"usernames": ["sshada", "sshbert", "sshdora"]})
        for user in ("sshada", "sshbert"):
            r = hub.api("POST", f"users/{user}/server", json={})
            assert r.status_code in (201, 202), r.text
        for user in ("sshada", "sshbert"):
            hub.wait_ready(user)
        known_hosts = tmp / "known_hosts"
        write_known_hosts(hub.data_dir, port, known_hosts)
        store = KeyStore(hub.data_dir / "ssh-keys.sqlite")
        keys = {u: make_key(tmp / "keys", u) for u in ("sshada", "sshbert", "sshdora", "stranger")}
        for user in ("sshada", "sshbert", "sshdora"):
            store.add(user, keys[user].public_line, "laptop")
        yield hub, SshTarget(port, known_hosts), keys, store, client
    except BaseException:
        print(dump_docker_state(client, hub))
        raise
    finally:
        if request.session.testsfailed:
            print(hub.log()[-6000:])
        hub.stop()
        remove_hub_leftovers(client, hub, volumes)


def _sessions(hub) -> list[dict]:
    path = hub.data_dir / "ssh-sessions.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_key_login_lands_as_the_container_user_in_home_with_the_users_gpu(deployment):
    hub, target, keys, _, client = deployment
    before = hub.api("GET", "users/sshada").json()["last_activity"]
    time.sleep(1.1)  # activity stamps have second precision
    r = target.ssh("sshada", keys["sshada"], 'id -un; id -u; pwd; echo "$NVIDIA_VISIBLE_DEVICES"')
    assert r.returncode == 0, r.stderr
    name, uid, cwd, devices = r.stdout.split()
    container = container_of(client, "sshada")
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
    assert (name, uid, cwd) == ("jovyan", "1000", "/home/jovyan")
    assert devices == env["NVIDIA_VISIBLE_DEVICES"] and devices in ("GPU-a", "GPU-b")
    # Bob's session is in sshbert's container, with sshbert's GPU.
    r = target.ssh("sshbert", keys["sshbert"], "echo $NVIDIA_VISIBLE_DEVICES; hostname")
    assert r.returncode == 0, r.stderr
    bob_devices, bob_host = r.stdout.split()
    assert bob_devices != devices
    assert bob_host == container_of(client, "sshbert").attrs["Config"]["Hostname"]
    # The exit status of a command comes back to the client.
    assert target.ssh("sshada", keys["sshada"], "exit 7").returncode == 7
    # Logged (user, key, source, start, end) and counted as activity for the culler.
    fingerprint = asyncssh.import_public_key(keys["sshada"].public_line).get_fingerprint()
    sessions = [s for s in _sessions(hub) if s["event"] == "session" and s["user"] == "sshada"]
    assert sessions and sessions[-1]["key"] == fingerprint
    assert sessions[-1]["source"].startswith("127.0.0.1:")
    assert sessions[-1]["started"] and sessions[-1]["ended"] and sessions[-1]["exit"] == 7
    assert any(s["event"] == "logout" and s["user"] == "sshada" for s in _sessions(hub))
    after = hub.api("GET", "users/sshada").json()["last_activity"]
    assert after > before


def test_a_file_written_over_scp_is_in_the_notebook_home_and_sftp_lists_it(deployment, tmp_path):
    hub, target, keys, _, _ = deployment
    local = tmp_path / "results.csv"
    local.write_text("epoch,loss\n1,0.25\n")
    scp = subprocess.run(
        ["scp", *target.options(keys["sshada"], "-P"), str(local), "sshada@127.0.0.1:results.csv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scp.returncode == 0, scp.stderr
    # The notebook server (through the hub's proxy) sees it in the user's home.
    r = hub.api("GET", "../../user/sshada/api/contents/results.csv?content=1")
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "epoch,loss\n1,0.25\n"
    listing = subprocess.run(
        ["sftp", "-b", "-", *target.options(keys["sshada"], "-P"), "sshada@127.0.0.1"],
        input="ls -l\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert "results.csv" in listing.stdout
    assert "jovyan" in listing.stdout  # owned by the container user, not root


def _serve_in(client, user: str, port: int, text: str) -> None:
    """A web server on the container's loopback only, serving one file."""
    container = container_of(client, user)
    container.exec_run(
        [
            "sh",
            "-c",
            f"mkdir -p /tmp/www && echo {text} > /tmp/www/index.html && cd /tmp/www && "
            f"exec python3 -m http.server {port} --bind 127.0.0.1",
        ],
        detach=True,
        user="1000:100",
    )
    for _ in range(50):
        if (
            container.exec_run(
                ["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}))"]
            ).exit_code
            == 0
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"no server on port {port} in {user}'s container")


def _forward(target, key, user, spec: str):
    return subprocess.Popen(
        [
            "ssh",
            # LogLevel INFO: the client then prints the gateway's refusal of a forward.
            *target.options(key, log_level="INFO"),
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            spec,
            f"{user}@127.0.0.1",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def _end(proc: subprocess.Popen) -> str:
    """Stop an `ssh -N` client and return what it printed on stderr.

    SIGTERM first; the OpenSSH 9.2 client has been seen (once, in CI, on a loaded host)
    to outlive it by 10 s after its forwards were refused, so SIGKILL after a grace.
    What the tests assert is the gateway's answer, which is on stderr either way.
    """
    proc.terminate()
    try:
        return proc.communicate(timeout=10)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate(timeout=10)[1]


def _wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"ssh is not listening on local port {port}")


def test_local_forward_reaches_a_loopback_port_inside_the_users_container(deployment):
    _, target, keys, _, client = deployment
    _serve_in(client, "sshada", 8765, "sshada-inside")
    local = free_port()
    proc = _forward(target, keys["sshada"], "sshada", f"{local}:localhost:8765")
    try:
        _wait_listening(local)
        r = requests.get(f"http://127.0.0.1:{local}/index.html", timeout=30)
        assert r.status_code == 200 and r.text.strip() == "sshada-inside"
        # A second connection over the same SSH connection works too.
        assert requests.get(f"http://127.0.0.1:{local}/", timeout=30).status_code == 200
    finally:
        _end(proc)


def test_forward_to_another_users_container_or_the_host_is_refused(deployment):
    _, target, keys, _, client = deployment
    _serve_in(client, "sshbert", 8766, "sshbert-secret")
    sshbert = container_of(client, "sshbert")
    bob_ip = next(iter(sshbert.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    for destination in (
        f"{bob_ip}:8888",
        "jupyter-sshbert:8888",
        "172.17.0.1:22",
        "example.org:80",
    ):
        local = free_port()
        proc = _forward(target, keys["sshada"], "sshada", f"{local}:{destination}")
        try:
            _wait_listening(local)
            with pytest.raises(requests.RequestException):
                requests.get(f"http://127.0.0.1:{local}/", timeout=15)
        finally:
            err = _end(proc)
        assert "administratively prohibited" in err, err
    # Bob's loopback server is not reachable as sshada's localhost either: it is sshada's own.
    local = free_port()
    proc = _forward(target, keys["sshada"], "sshada", f"{local}:localhost:8766")
    try:
        _wait_listening(local)
        with pytest.raises(requests.RequestException):
            requests.get(f"http://127.0.0.1:{local}/", timeout=15)
    finally:
        _end(proc)


def test_password_unknown_key_and_another_users_name_are_refused(deployment):
    hub, target, keys, _, _ = deployment
    # The gateway offers public keys only: a password or keyboard-interactive login has
    # nothing to answer ("Permission denied (publickey)" lists what the server allows).
    r = target.ssh(
        "sshada",
        None,
        "true",
        extra=(
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ),
    )
    assert r.returncode == 255 and "Permission denied (publickey)" in r.stderr, r.stderr
    r = target.ssh("sshada", keys["stranger"], "true")
    assert r.returncode == 255 and "Permission denied" in r.stderr
    r = target.ssh("sshbert", keys["sshada"], "id -un")
    assert r.returncode == 255 and "Permission denied" in r.stderr
    assert r.stdout == ""
    # A name that is no user gets the very same answer: nothing tells names apart.
    r = target.ssh("nosuchuser", keys["stranger"], "true")
    assert r.returncode == 255 and "Permission denied (publickey)" in r.stderr
    # Each refused connection is logged with the names and keys it tried and its source.
    stranger = asyncssh.import_public_key(keys["stranger"].public_line).get_fingerprint()
    refused = [e for e in _sessions(hub) if e["event"] == "refused"]
    assert any(f"sshada {stranger}" in e["tried"] for e in refused)
    assert all(e["source"].startswith("127.0.0.1:") for e in refused)


async def _password_attempt(port: int) -> str:
    try:
        async with asyncssh.connect(
            "127.0.0.1",
            port,
            username="sshada",
            password="anything",
            known_hosts=None,
            client_keys=None,
            preferred_auth="password,keyboard-interactive",
        ):
            return "logged in"
    except asyncssh.PermissionDenied as e:
        return f"denied: {e}"


def test_a_password_sent_anyway_is_refused(deployment):
    _, target, _, _, _ = deployment
    assert asyncio.run(_password_attempt(target.port)).startswith("denied")


def test_a_removed_key_stops_working_at_once(deployment, tmp_path):
    _, target, _, store, _ = deployment
    key = make_key(tmp_path, "spare")
    added = store.add("sshada", key.public_line, "spare")
    assert target.ssh("sshada", key, "true").returncode == 0
    assert store.remove("sshada", added.id)
    r = target.ssh("sshada", key, "true")
    assert r.returncode == 255 and "Permission denied" in r.stderr


def test_a_user_without_a_running_server_is_told_how_to_start_one(deployment):
    hub, target, keys, _, _ = deployment
    r = target.ssh("sshdora", keys["sshdora"], "true")
    assert r.returncode == 1
    assert "You have no running server. Start one at http://127.0.0.1:" in r.stderr
    assert "/hub/spawn" in r.stderr


async def _pty_sizes(port: int, key_path, known_hosts) -> list[str]:
    async with asyncssh.connect(
        "127.0.0.1",
        port,
        username="sshada",
        client_keys=[str(key_path)],
        known_hosts=str(known_hosts),
    ) as conn:
        proc = await conn.create_process(term_type="xterm", term_size=(100, 30))
        proc.stdin.write("stty size; tty\n")
        seen = []
        buf = ""
        while "30 100" not in buf:
            buf += await asyncio.wait_for(proc.stdout.read(1024), 20)
        seen.append("30 100")
        proc.change_terminal_size(132, 43)
        await asyncio.sleep(0.5)
        proc.stdin.write("stty size; exit 3\n")
        buf = ""
        while "43 132" not in buf:
            buf += await asyncio.wait_for(proc.stdout.read(1024), 20)
        seen.append("43 132")
        result = await asyncio.wait_for(proc.wait(), 20)
        seen.append(f"exit {result.exit_status}")
        return seen


def test_interactive_shell_has_a_pty_that_follows_resizes(deployment):
    _, target, keys, _, _ = deployment
    seen = asyncio.run(_pty_sizes(target.port, keys["sshada"].private, target.known_hosts))
    assert seen == ["30 100", "43 132", "exit 3"]


def test_openssh_with_a_terminal_gets_a_pty_in_the_container(deployment):
    _, target, keys, _, _ = deployment
    r = target.ssh("sshada", keys["sshada"], "tty; echo $TERM", extra=("-tt",))
    assert r.returncode == 0, r.stderr
    tty, term = r.stdout.split()
    assert tty.startswith("/dev/pts/") and term
    # Without -t a command has no terminal, as with OpenSSH's own server.
    r = target.ssh("sshada", keys["sshada"], "tty")
    assert r.returncode == 1 and r.stdout.strip() == "not a tty"


def test_host_key_is_kept_0600_in_the_data_directory(deployment):
    hub, *_ = deployment
    path = hub.data_dir / "ssh_host_ed25519_key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (hub.data_dir / "ssh-keys.sqlite").stat().st_mode & 0o777 == 0o600
    assert (hub.data_dir / "ssh-sessions.log").stat().st_mode & 0o777 == 0o600


def _running_in(container, marker: str) -> bool:
    """Whether a process with `marker` in its command line runs in the container."""
    probe = (
        "import os, sys; sys.exit(0 if any(sys.argv[1] in open(f'/proc/{p}/cmdline').read()"
        ".replace(chr(0), ' ') for p in os.listdir('/proc') if p.isdigit() and p != str("
        "os.getpid())) else 1)"
    )
    return container.exec_run(["python3", "-c", probe, marker]).exit_code == 0


def test_a_command_left_behind_by_a_vanished_client_is_ended(deployment):
    _, target, keys, _, client = deployment
    container = container_of(client, "sshada")
    proc = subprocess.Popen(
        ["ssh", *target.options(keys["sshada"]), "sshada@127.0.0.1", "sleep 4321"],
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not _running_in(container, "sleep 4321"):
            assert time.monotonic() < deadline, "the command never started in the container"
            time.sleep(0.2)
    finally:
        proc.kill()  # the laptop's lid closes: no goodbye
        proc.wait(10)
    deadline = time.monotonic() + 15
    while _running_in(container, "sleep 4321"):
        assert time.monotonic() < deadline, "the command outlived its SSH session"
        time.sleep(0.5)


def test_auto_start_starts_the_default_profile_with_progress_and_a_missing_sftp_server_is_explained(
    hub_factory, docker_client, tmp_path
):
    """The admin's opt-in: connecting starts the server; an image without sftp-server says so."""
    image = "cudaspawner-test/ssh-no-sftp:latest"
    dockerfile = (
        "FROM cudaspawner/cpu:latest\nUSER root\n"
        "RUN rm -f /usr/lib/openssh/sftp-server\nUSER 1000:100\n"
    )
    docker_client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()),
        tag=image,
        labels={"org.cudaspawner.test": "ssh"},
        rm=True,
        forcerm=True,
    )
    port = free_port()
    hub = hub_factory(
        'c.CUDADockerSpawner.profiles = [{"slug": "cpu", "display_name": "CPU", "default": True}]',
        env={
            "CUDASPAWNER_SSH_PORT": str(port),
            "CUDASPAWNER_SSH_IP": "127.0.0.1",
            "CUDASPAWNER_SSH_AUTOSTART": "1",
            "CUDASPAWNER_IMAGE": image,
        },
    )
    hub_factory.volumes.append("cudaspawner-home-sshenzo")
    wait_for_port(port)
    hub.api("POST", "users", json={"usernames": ["sshenzo"]})
    key = make_key(tmp_path, "sshenzo")
    KeyStore(hub.data_dir / "ssh-keys.sqlite").add("sshenzo", key.public_line)
    known_hosts = tmp_path / "known_hosts"
    write_known_hosts(hub.data_dir, port, known_hosts)
    target = SshTarget(port, known_hosts)

    r = target.ssh("sshenzo", key, "id -un", timeout=150)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "jovyan"
    assert "Starting your server with the default profile" in r.stderr
    assert hub.api("GET", "users/sshenzo").json()["servers"][""]["ready"]

    listing = subprocess.run(
        ["sftp", "-b", "-", *target.options(key, "-P"), "sshenzo@127.0.0.1"],
        input="ls\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode != 0
    assert "This server's image has no SFTP server" in listing.stderr
    assert "openssh-sftp-server" in listing.stderr


def test_a_users_container_cannot_reach_the_gateway(deployment):
    """From inside a container the hub's port answers, the SSH port does not (host firewall)."""
    hub, target, _, _, client = deployment
    gateway = client.networks.get(TEST_NETWORK).attrs["IPAM"]["Config"][0]["Gateway"]
    probe = (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
        "    print('open')\n"
        "except OSError as e:\n"
        "    print('closed', e)\n"
    )
    container = container_of(client, "sshada")

    def reach(port: int) -> str:
        return container.exec_run(["python3", "-c", probe, gateway, str(port)]).output.decode()

    assert reach(int(hub.env["CUDASPAWNER_HUB_PORT"])).startswith("open")
    assert reach(target.port).startswith("closed")


def port_no_hub_rule_accepts(client) -> int:
    """A free port for the gateway that no rule on the shared test network's host chain accepts.

    Every test hub opens its random API port in that chain. A hub closes it when it exits,
    and the next hub to start closes a killed one's; until then it is still open, so a gateway
    drawn on such a port would be reachable from containers for a reason that is not the
    gateway's (seen once in CI: port 33741).
    """
    import re
    import subprocess

    from spawner.host.firewall import bridge_name, chain_name

    bridge = bridge_name(client.networks.get(TEST_NETWORK).attrs)
    rules = subprocess.run(
        ["iptables", "-w", "-S", chain_name(bridge)], capture_output=True, text=True, check=False
    ).stdout
    accepted = {int(p) for p in re.findall(r"--dport (\d+) .*-j ACCEPT", rules)}
    for _ in range(100):
        port = free_port()
        if port not in accepted:
            return port
    raise AssertionError("no free port outside the test network's accepted ports")


# --- limits and logs (issue 23) ---------------------------------------------------------------
def test_one_user_cannot_open_more_than_ten_sessions_at_once(deployment):
    hub, target, keys, _, client = deployment
    held = [
        subprocess.Popen(
            ["ssh", *target.options(keys["sshada"]), "sshada@127.0.0.1", "sleep 25"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(10)
    ]  # fmt: skip
    try:
        container = client.containers.get(container_name("sshada"))
        count = (
            "import glob;print(sum(b'sleep' in open(p,'rb').read() "
            "for p in glob.glob('/proc/[0-9]*/cmdline')))"
        )
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            out = container.exec_run(["python3", "-c", count]).output.decode().strip()
            if out.isdigit() and int(out) >= 10:
                break
            time.sleep(0.5)
        refused = target.ssh("sshada", keys["sshada"], "true")
        assert refused.returncode != 0 and "most this hub allows" in refused.stderr, refused
        # Another user is not affected by sshada's sessions.
        assert target.ssh("sshbert", keys["sshbert"], "true").returncode == 0
    finally:
        for p in held:
            p.kill()
            p.wait(10)


async def test_one_address_cannot_hold_more_than_ten_unauthenticated_connections(deployment):
    import asyncio

    hub, target, _, _, _ = deployment
    held = [await asyncio.open_connection("127.0.0.1", target.port) for _ in range(10)]
    try:
        for reader, _ in held:
            assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"SSH-")
        # The eleventh is closed at once (read() reaches the end instead of waiting).
        reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
        await asyncio.wait_for(reader.read(), 5)
        writer.close()
        # Another address still gets in while these wait.
        other_reader, other = await asyncio.open_connection(
            "127.0.0.1", target.port, local_addr=("127.0.0.2", 0)
        )
        assert (await asyncio.wait_for(other_reader.readline(), 10)).startswith(b"SSH-")
        other.close()
        # The waiting ones are closed after the login grace time (15 s), not 60: read()
        # reaches the end well within 25 s of their opening.
        await asyncio.wait_for(held[0][0].read(), 25)
    finally:
        for _, w in held:
            w.close()
    assert "too_many_unauthenticated" in hub.log()


async def test_a_forward_target_with_a_line_break_is_logged_as_one_escaped_field(
    deployment, tmp_path
):
    hub, target, keys, _, _ = deployment
    forged = 'x\n[I 2026-12-04 00:00:00 cudaspawner.ssh] ssh {"event": "login", "user": "admin"}'
    async with asyncssh.connect(
        "127.0.0.1",
        target.port,
        username="sshada",
        client_keys=[str(keys["sshada"].private)],
        known_hosts=str(target.known_hosts),
    ) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection(forged, 80)
    log = hub.log()
    assert "forward_refused" in log
    assert not [line for line in log.splitlines() if line.startswith("[I 2026-12-04 00:00:00")]
    assert '"to_host": "x\\n[I 2026-12-04 00:00:00' in log
