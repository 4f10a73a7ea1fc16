"""`configure_ssh`: the one call in jupyterhub_config.py that adds the SSH service."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..environment import read_environment

SERVICE = "ssh"
ROLE = "ssh-gateway"
# What the gateway may do with the hub API: find users' servers and the container the
# spawner made for each (server state), report activity, start a server if allowed.
SCOPES = ["read:users", "read:servers", "admin:server_state", "users:activity"]


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh_service(
    data_dir: Path,
    hub_url: str,
    *,
    ssh_port: int = 2222,
    ssh_ip: str = "",
    ssh_host: str = "",
    page_port: int = 0,
    auto_start: bool = False,
) -> tuple[dict, dict]:
    """(service, role) entries for the hub's configuration (pure: no I/O but a free port)."""
    page_port = page_port or _free_loopback_port()
    args = [
        f"--SshGatewayApp.data_dir={data_dir}",
        f"--SshGatewayApp.ssh_port={ssh_port}",
        f"--SshGatewayApp.ssh_ip={ssh_ip}",
        f"--SshGatewayApp.ssh_host={ssh_host}",
        f"--SshGatewayApp.page_port={page_port}",
        f"--SshGatewayApp.hub_url={hub_url}",
        f"--SshGatewayApp.auto_start={auto_start}",
    ]
    service = {
        "name": SERVICE,
        "display": True,  # listed in the hub's Services menu
        "url": f"http://127.0.0.1:{page_port}",
        "command": [sys.executable, "-m", "spawner.ssh", *args],
        "oauth_no_confirm": True,
        # The service reads the engine's socket; it inherits the hub's environment for it.
        "environment": {
            **{k: v for k, v in os.environ.items() if k in ("DOCKER_HOST", "PATH")},
            # `python -m spawner.ssh` from a source checkout as well as from an install.
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        },
    }
    scopes = SCOPES + (["servers"] if auto_start else [])
    role = {"name": ROLE, "services": [SERVICE], "scopes": scopes}
    return service, role


def public_hub_url(bind_url: str) -> str:
    """The hub's URL as users type it: bind_url with this host's name when it has none."""
    parts = urlsplit(bind_url)
    host = parts.hostname or ""
    if host in ("", "0.0.0.0", "::"):
        netloc = socket.getfqdn() + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/"))


def ssh_host_for(public_url: str) -> str:
    """The host name users type after '@': the hub's, except a `*.localhost` name, which
    only browsers and curl resolve by themselves (not OpenSSH everywhere): this machine's."""
    host = urlsplit(public_url).hostname or ""
    return socket.getfqdn() if host == "localhost" or host.endswith(".localhost") else host


def configure_ssh(c, data_dir: Path, hub_url: str, env: Mapping | None = None) -> None:
    """Add the SSH gateway and keys page to the hub's config `c` (CUDASPAWNER_SSH=0: none).

    `env`: the deployment's settings (`spawner.environment.read_environment`), whose
    CUDASPAWNER_SSH_* variables set the port, address, host name shown to users, the keys
    page's loopback port and whether a login starts a stopped server.
    """
    env = read_environment() if env is None else env
    if not env["CUDASPAWNER_SSH"]:
        return
    port, page_port = env["CUDASPAWNER_SSH_PORT"], env["CUDASPAWNER_SSH_PAGE_PORT"]
    public = public_hub_url(hub_url)
    service, role = ssh_service(
        data_dir,
        public,
        ssh_port=port,
        ssh_ip=env["CUDASPAWNER_SSH_IP"],
        ssh_host=env["CUDASPAWNER_SSH_HOST"] or ssh_host_for(public),
        page_port=page_port,
        auto_start=env["CUDASPAWNER_SSH_AUTOSTART"],
    )
    # Appended to, not replacing, what the site or the tests configure.
    c.JupyterHub.services = [*c.JupyterHub.get("services", []), service]
    roles = with_user_scope(
        c.JupyterHub.get("load_roles", []), f"access:services!service={SERVICE}"
    )
    c.JupyterHub.load_roles = [*roles, role]
    # A deleted account's keys are removed with it (the spawner's delete_forever).
    c.CUDADockerSpawner.ssh_key_store = str(Path(data_dir) / "ssh-keys.sqlite")


def with_user_scope(roles: list[dict], scope: str) -> list[dict]:
    """`roles` with `scope` added to the default `user` role (every user): without it the
    hub refuses the keys page to everyone but admins. A site's own `user` role keeps its
    scopes; JupyterHub's default is `self`."""
    out = [dict(r) for r in roles]
    for role in out:
        if role.get("name") == "user":
            role["scopes"] = [*role.get("scopes", ["self"]), scope]
            return out
    return [*out, {"name": "user", "scopes": ["self", scope]}]
