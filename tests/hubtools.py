"""A real JupyterHub in a subprocess, and a browser-like client for it.

The hub runs the project's own `jupyterhub_config.py` (the default deployment) with a
throw-away data directory, free ports, a test Docker network and an extra config file per
test, so integration tests exercise what an admin actually deploys.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import docker
import requests
import requests.adapters

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TEST_NETWORK = "cudaspawner-test"
TEST_LABEL = "org.cudaspawner.test-hub"
# Test hubs name their containers and home volumes apart from a deployment on the same
# engine (whose servers are jupyter-<user>, cudaspawner-home-<user>), and each has its own
# hub identity, so the suite can run beside a live hub and touches only what it made. A lane
# of test.sh that runs beside another on the same engine has a prefix of its own.
TEST_PREFIX = os.environ.get("CUDASPAWNER_TEST_PREFIX", "jupytest")
DOMAIN = "hub.localhost"  # the default deployment's public name
HUB_LABEL = "org.cudaspawner.hub"


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on loopback now, all held at once while chosen (two
    `free_port()` calls can return the same port). They lie below the kernel's ephemeral
    range where it leaves room, so an outgoing connection does not take one before the hub
    binds it."""
    low, _ = _ephemeral_range()
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            s = socket.socket()
            try:
                if low > 12000:
                    s.bind(("127.0.0.1", secrets.randbelow(low - 11000) + 10000))
                else:
                    s.bind(("127.0.0.1", 0))
            except OSError:
                s.close()
                continue
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


# The ports make_hub chooses (env names); the hub's own public port is in its bind URL.
_HUB_PORT_ENVS = ("CUDASPAWNER_PROXY_API_PORT", "CUDASPAWNER_HUB_PORT", "CUDASPAWNER_SSH_PORT")


class PortTaken(RuntimeError):
    """A port of the hub's was taken before the hub could bind it."""


@dataclass
class Hub:
    """A running hub: its URL, its admin API token, and the log it writes."""

    data_dir: Path
    url: str
    admin_token: str
    proc: subprocess.Popen | None = None
    extra_config: str = ""
    env: dict = field(default_factory=dict)
    hub_id: str = ""
    started: dict = field(default_factory=dict)  # pid -> cmdline the hub started
    own_ports: bool = False  # every port chosen by make_hub (none given by the test)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "jupyterhub.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def user_password(self) -> str:
        return (self.data_dir / "user-password").read_text().strip()

    @property
    def verify(self) -> str | bool:
        """What a client verifies the hub's TLS certificate against."""
        return str(self.data_dir / "hub-cert.pem") if self.url.startswith("https") else True

    @property
    def subdomains(self) -> bool:
        """Whether each user's server has its own host name (the default deployment)."""
        return self.env.get("CUDASPAWNER_USER_SUBDOMAINS", "1") not in ("0", "off", "false")

    def server_url(self, user: str, path: str = "") -> str:
        """The URL of `user`'s default server (plus `path`), on its own host name when the
        hub gives it one."""
        parsed = urlparse(self.url)
        host = f"{user}.{parsed.hostname}" if self.subdomains else parsed.hostname
        return f"{parsed.scheme}://{host}:{parsed.port}/user/{user}/{path.lstrip('/')}"

    def service_url(self, name: str, path: str = "") -> str:
        """The URL of a hub service's page: on its own host name with per-user origins
        (`<name>--service.<domain>`, JupyterHub's naming), else under the hub's."""
        parsed = urlparse(self.url)
        host = parsed.hostname
        if self.subdomains:
            from jupyterhub.utils import subdomain_hook_idna

            host = subdomain_hook_idna(name, host, "service")
        return f"{parsed.scheme}://{host}:{parsed.port}/services/{name}/{path.lstrip('/')}"

    def api(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"Authorization": f"token {self.admin_token}", **kw.pop("headers", {})}
        kw.setdefault("verify", self.verify)
        return requests.request(
            method, f"{self.url}hub/api/{path.lstrip('/')}", headers=headers, timeout=60, **kw
        )

    def start(self, timeout: float = 60, sigint_ignored: bool = False) -> None:
        """Start the hub and wait until it serves.

        `sigint_ignored=True` starts it as `scripts/up.sh` does, in the background of a
        script (`setsid nohup ... &`), which POSIX starts with SIGINT ignored. A port taken
        by someone else between choosing and binding it (EADDRINUSE) is not the test's
        failure: the hub starts again on new ports, up to twice.
        """
        for attempt in range(3):
            try:
                return self._start_once(timeout, sigint_ignored)
            except PortTaken:
                if attempt == 2 or not self.own_ports:  # a test's own port: its business
                    raise
                self.stop()
                self._new_ports()

    def _new_ports(self) -> None:
        public, *others = free_ports(1 + len(_HUB_PORT_ENVS))
        for name, port in zip(_HUB_PORT_ENVS, others, strict=True):
            if name in self.env:
                self.env[name] = str(port)
        bind = urlparse(self.env["CUDASPAWNER_BIND_URL"])
        self.env["CUDASPAWNER_BIND_URL"] = f"{bind.scheme}://{bind.hostname}:{public}"
        url = urlparse(self.url)
        self.url = f"{url.scheme}://{url.hostname}:{public}/"

    def _start_once(self, timeout: float, sigint_ignored: bool) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(REPO / "jupyterhub_config.py")],
            cwd=self.data_dir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            written = self.log()[offset:]
            # The proxy, the hub or a service could not bind a port: the hub exits, or waits
            # on whatever holds it.
            if "EADDRINUSE" in written or "Address already in use" in written:
                try:  # most often it exits by itself, and undoes what it did on the way
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
                raise PortTaken(f"the hub exited: a port of its was taken\n{written[-3000:]}")
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.proc.returncode}:\n{self.log()}")
            if "JupyterHub is now running" in written:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the hub did not start in {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        """Stop the hub process (and its proxy), leaving user containers running."""
        if self.proc is None or self.proc.poll() is not None:
            self._end_leftovers()
            return
        self.started.update(children_of(self.proc.pid))
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._end_leftovers()

    def kill(self) -> dict[int, str]:
        """Kill the hub outright (`kill -9`, the OOM killer): it stops nothing on the way.
        Returns the processes it had started (the proxy, the managed services), which run
        in sessions of their own; `stop` ends whichever of them are still there."""
        started = children_of(self.proc.pid)
        self.started.update(started)
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        return started

    def _end_leftovers(self) -> None:
        # A hub that exits cleanly has stopped these; one that was killed has not, nor one
        # that failed to start after starting its proxy (a hub port already taken).
        proxy = self.data_dir / "jupyterhub-proxy.pid"
        if proxy.exists() and proxy.read_text().strip().isdigit():
            pid = int(proxy.read_text())
            api_port = f"--api-port\0{self.env.get('CUDASPAWNER_PROXY_API_PORT')}\0"
            cmdline = cmdline_of(pid)
            if cmdline and "configurable-http-proxy" in cmdline and api_port in cmdline:
                self.started[pid] = cmdline
        for pid, cmdline in self.started.items():
            if cmdline_of(pid) == cmdline:  # still that process, not a reused PID
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.started.clear()

    # --- user servers ---------------------------------------------------------------------
    def wait_ready(self, user: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"users/{user}").json()
            server = model.get("servers", {}).get("", {})
            if server.get("ready"):
                return server
            if not server and not model.get("pending"):
                raise AssertionError(
                    f"{user}'s server is not starting: {model}\n{self.log()[-3000:]}"
                )
            time.sleep(0.25)
        raise AssertionError(f"{user}'s server not ready in {timeout}s:\n{self.log()[-3000:]}")

    def progress_until(self, user: str, words: str, timeout: float = 30) -> str:
        """The first message of `user`'s pending start's progress that contains `words`."""
        seen = []
        with requests.get(
            f"{self.url}hub/api/users/{user}/server/progress",
            headers={"Authorization": f"token {self.admin_token}"},
            stream=True,
            timeout=timeout,
            verify=self.verify,
        ) as r:
            deadline = time.monotonic() + timeout
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    message = json.loads(line[5:]).get("message", "")
                    seen.append(message)
                    if words in message:
                        return message
                if time.monotonic() > deadline:
                    break
        raise AssertionError(f"no progress message with {words!r} for {user}: {seen}")

    def wait_stopped(self, user: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"users/{user}").json()
            if not model.get("servers") and not model.get("pending"):
                return
            time.sleep(0.25)
        raise AssertionError(f"{user}'s server did not stop in {timeout}s")


def cmdline_of(pid: int) -> str | None:
    """A process's command line (NUL-separated); empty for a zombie, None when gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return None


def children_of(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        child = int(stat.parent.name)
        cmdline = cmdline_of(child) if ppid == pid else None
        if cmdline:
            found[child] = cmdline
    return found


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_hub(
    tmp_path: Path,
    extra_config: str = "",
    env: dict | None = None,
    secure: bool = False,
    as_deployed: bool = False,
) -> Hub:
    """A configured (not yet started) hub in `tmp_path`.

    `secure=True` runs the default deployment as shipped (HTTPS, NativeAuthenticator,
    internal TLS). Otherwise the same file with plain HTTP, JupyterHub's shared-password
    login and no internal TLS, which keeps tests about spawning short.

    `as_deployed=True` keeps the deployment's own naming (jupyter-<user>,
    cudaspawner-home-<user>) and identity (generated in the data directory), to stand for
    a live deployment beside the test hubs.
    """
    data_dir = tmp_path / "hub"
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    port, proxy_api_port, hub_port, ssh_port = free_ports(4)
    hub_id = "" if as_deployed else f"test-{secrets.token_hex(6)}"
    config = f"""
c.JupyterHub.services = [{{"name": "test-admin", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["test-admin"]}}]
c.DockerSpawner.extra_create_kwargs = {{"labels": {{{TEST_LABEL!r}: {str(data_dir)!r}}}}}
{"" if as_deployed else _test_identity(hub_id)}
c.JupyterHub.log_level = "DEBUG"
{extra_config}
"""
    (data_dir / "test_config.py").write_text(config)
    hub_env = {
        **os.environ,
        "CUDASPAWNER_DATA": str(data_dir),
        "CUDASPAWNER_NETWORK": TEST_NETWORK,
        "CUDASPAWNER_PROXY_API_PORT": str(proxy_api_port),
        "CUDASPAWNER_HUB_PORT": str(hub_port),
        # Every test hub runs the SSH gateway: on a free loopback port, never the deployment's.
        "CUDASPAWNER_SSH_PORT": str(ssh_port),
        "CUDASPAWNER_SSH_IP": "127.0.0.1",
        "CUDASPAWNER_EXTRA_CONFIG": str(data_dir / "test_config.py"),
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        # A hub that dies of a signal (CI once saw a segfault in libpython during four
        # spawns at once) leaves its threads' Python stacks in its log.
        "PYTHONFAULTHANDLER": "1",
    }
    scheme = "https" if secure else "http"
    hub_env["CUDASPAWNER_BIND_URL"] = f"{scheme}://127.0.0.1:{port}"
    if not secure:
        # The quick hub: one origin for all (it has no HTTPS for per-user origins).
        hub_env.update(
            CUDASPAWNER_TLS="0",
            CUDASPAWNER_INTERNAL_SSL="0",
            CUDASPAWNER_AUTH="shared-password",
            CUDASPAWNER_USER_SUBDOMAINS="0",
        )
    hub_env.update(env or {})
    # As deployed: the hub on its name, each user's server on <user>.<name> (both resolve
    # to this machine: *.localhost is loopback).
    subdomains = hub_env.get("CUDASPAWNER_USER_SUBDOMAINS", "1") not in ("0", "off", "false")
    domain = hub_env.get("CUDASPAWNER_DOMAIN", DOMAIN)
    host = domain if subdomains else "127.0.0.1"
    return Hub(
        data_dir=data_dir,
        url=f"{scheme}://{host}:{port}/",
        admin_token=token,
        env=hub_env,
        hub_id=hub_id,
        own_ports=not set(env or {}) & {*_HUB_PORT_ENVS, "CUDASPAWNER_BIND_URL"},
    )


def _test_identity(hub_id: str) -> str:
    return (
        f"c.CUDADockerSpawner.hub_id = {hub_id!r}\n"
        f"c.DockerSpawner.prefix = {TEST_PREFIX!r}\n"
        f"c.CUDADockerSpawner.home_volume_name = {TEST_PREFIX + '-home-{username}'!r}\n"
    )


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Connects from a chosen local address (e.g. 127.0.0.2), to be another client."""

    def __init__(self, source: str, **kw) -> None:
        self.source = source
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.source, 0)
        return super().init_poolmanager(*args, **kw)


class Browser:
    """A cookie-keeping HTTP client that logs in through the hub's HTML form, like a person.

    `source_address` makes it connect from that local address (any of 127.0.0.0/8), so a
    test can be two different clients of the same hub.
    """

    def __init__(self, hub: Hub, source_address: str | None = None) -> None:
        self.hub = hub
        self.session = requests.Session()
        # REQUESTS_CA_BUNDLE in the environment would override session.verify.
        self.session.trust_env = False
        self.session.verify = hub.verify
        if source_address:
            adapter = SourceAddressAdapter(source_address)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)

    def url(self, path: str) -> str:
        """`path` on the hub, or a user's server path (`user/<name>/...`) on that server's
        own host name, where a browser ends up after the hub's redirect."""
        path = path.lstrip("/")
        if path.startswith("user/") and self.hub.subdomains:
            _, name, *rest = path.split("/", 2)
            return self.hub.server_url(name, rest[0] if rest else "")
        if path.startswith("services/") and self.hub.subdomains:
            _, name, *rest = path.split("/", 2)
            return self.hub.service_url(name, rest[0] if rest else "")
        return self.hub.url + path

    def get(self, path: str, **kw) -> requests.Response:
        return self.session.get(self.url(path), timeout=60, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        headers = {"X-XSRFToken": self.xsrf, **kw.pop("headers", {})}
        return self.session.post(self.url(path), headers=headers, timeout=90, **kw)

    @property
    def xsrf(self) -> str:
        """The hub's XSRF token (the hub's own cookie, not a user server's)."""
        host = urlparse(self.hub.url).hostname
        for cookie in self.session.cookies:
            if cookie.name == "_xsrf" and cookie.domain.lstrip(".") == host:
                if cookie.path.startswith("/hub"):
                    return cookie.value
        for cookie in self.session.cookies:
            if cookie.name == "_xsrf" and cookie.domain.lstrip(".") == host:
                return cookie.value
        return ""

    def login(self, user: str, password: str) -> requests.Response:
        page = self.get("hub/login")
        assert page.status_code == 200, page.text[:500]
        r = self.session.post(
            self.hub.url + "hub/login",
            data={"username": user, "password": password, "_xsrf": self.xsrf},
            allow_redirects=False,
            timeout=60,
        )
        return r

    def spawn(self, user: str, options: dict | None = None) -> requests.Response:
        body = json.dumps(options) if options is not None else None
        return self.post(f"hub/api/users/{user}/server", data=body)

    def submit_form(self, user: str, fields: dict) -> requests.Response:
        self.get(f"hub/spawn/{user}")
        return self.session.post(
            self.hub.url + f"hub/spawn/{user}",
            data={**fields, "_xsrf": self.xsrf},
            allow_redirects=False,
            timeout=90,
        )


def hub_containers(client: docker.DockerClient, hub: Hub, all_: bool = True) -> list:
    return client.containers.list(all=all_, filters={"label": f"{TEST_LABEL}={hub.data_dir}"})


def container_name(user: str) -> str:
    """The name a test hub gives `user`'s default server."""
    return f"{TEST_PREFIX}-{user}"


def container_of(client: docker.DockerClient, user: str):
    return client.containers.get(container_name(user))


def dump_docker_state(client: docker.DockerClient, hub: Hub) -> str:
    """Container logs and `docker inspect`, printed when a test fails (as DockerSpawner does)."""
    out = []
    for c in hub_containers(client, hub):
        out.append(f"==== container {c.name} ({c.status})")
        try:
            out.append(c.logs(tail=200).decode(errors="replace"))
        except docker.errors.APIError as e:
            out.append(f"(no logs: {e})")
        out.append(json.dumps(c.attrs, indent=1)[:6000])
    out.append("==== hub log (tail)")
    out.append(hub.log()[-6000:])
    return "\n".join(out)


def remove_hub_leftovers(client: docker.DockerClient, hub: Hub, volumes: list[str] = ()) -> None:
    """Remove what this test hub made: containers with its test label, volumes with its
    identity. `volumes` names more, removed only when they carry this hub's identity (a
    live deployment's `cudaspawner-home-<user>` is never touched)."""
    for c in hub_containers(client, hub):
        _remove_quietly(lambda c=c: c.remove(force=True, v=True))
    if not hub.hub_id:
        return
    owned = client.volumes.list(filters={"label": f"{HUB_LABEL}={hub.hub_id}"})
    for v in volumes:
        try:
            owned.append(client.volumes.get(v))
        except docker.errors.NotFound:
            pass
    for vol in owned:
        if (vol.attrs.get("Labels") or {}).get(HUB_LABEL) == hub.hub_id:
            _remove_quietly(lambda vol=vol: vol.remove(force=True))


def _remove_quietly(remove) -> None:
    """Gone already, or being removed by the hub's own stop (409 "already in progress"): fine."""
    try:
        remove()
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:
            raise


def host_of(url: str) -> str:
    return urlparse(url).hostname or ""
