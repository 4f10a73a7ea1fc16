"""`configure_operations(c, data_dir)`: the default deployment's one call for operating a GPU
hub. It registers, from the site's settings and the environment:

- the operations service `gpu-admin` (the idle-GPU reclaim and the GPU admin page, linked
  from the admin's home under Services), with a role holding only the scopes it uses;
- `jupyterhub-idle-culler` for idle servers of any kind (web and kernel activity), which
  is what handles CPU-only servers;
- the fleet's figures on `/hub/metrics`;
- JSON-lines logs, when asked.

Environment: CUDASPAWNER_GPU_RECLAIM (on), CUDASPAWNER_ADMIN_PAGE_PORT (a free port),
CUDASPAWNER_IDLE_TIMEOUT (seconds, 3600; "off" for no culler), CUDASPAWNER_JSON_LOGS (off).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..accounting.settings import GpuUsage
from ..environment import read_environment
from ..gpu.line_store import LINE_FILE
from .gpu_reclaim import GpuReclaim, parse_policies
from .hub_metrics import register_fleet_metrics
from .json_logs import logging_config

SERVICE_NAME = "gpu-admin"
CULLER_NAME = "idle-culler"
SETTINGS_ENV = "CUDASPAWNER_OPS_SETTINGS"
JSON_LOGS_ENV = "CUDASPAWNER_JSON_LOGS"
SNAPSHOT_FILE = "fleet.json"

# What the service does and nothing more: read users, their groups and servers (with the
# server state, which names each server's container), stop servers, and mint for each GPU
# server's owner a token scoped to that one server, with which it asks the server for its
# figures. Its own token never reaches a user's server, so it needs no `access:servers`.
SERVICE_SCOPES = [
    "list:users",
    "read:users",
    "read:users:groups",
    "read:servers",
    "admin:server_state",
    "servers",
    "tokens",
]
# jupyterhub-idle-culler's documented minimum.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_address(bind_url: str) -> str:
    """Where the service reaches the proxy's public side, from the hub's bind_url."""
    parsed = urlparse(bind_url)
    host = parsed.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.scheme}://{host}:{port}"


def service_settings(
    reclaim: GpuReclaim,
    inventory: Any,
    proxy_url: str,
    proxy_ca: str | None,
    snapshot: Path,
    public_domain: str = "",
    gpu_line: Path | None = None,
    line_shares: Mapping[str, int] | None = None,
    usage_url: str = "",
    usage_budgets: list | None = None,
    usage_stop: bool = False,
) -> dict:
    """The document the service reads at start (validated here, so a mistake stops the hub)."""
    try:
        parse_policies(reclaim.policies)
    except ValueError as e:
        raise SystemExit(f"cudaspawner: {e}") from None
    return {
        "reclaim": {
            "enabled": reclaim.enabled,
            "policies": reclaim.policies,
            "exempt_users": list(reclaim.exempt_users),
            "exempt_groups": list(reclaim.exempt_groups),
            "interval": reclaim.interval,
        },
        "inventory": inventory,
        "proxy_url": proxy_url,
        "proxy_ca": proxy_ca,
        "public_domain": public_domain,
        "snapshot": str(snapshot),
        "gpu_line": str(gpu_line) if gpu_line else None,
        "gpu_line_shares": dict(line_shares or {}),
        # The GPU-hours record ("" when off): the same URL the hub's spawner writes to.
        "usage_url": usage_url,
        "usage_budgets": list(usage_budgets or []),
        "usage_stop": usage_stop,
    }


def configure_operations(c: Any, data_dir: Path, env: Mapping | None = None) -> None:
    """Register the operations service, the idle culler, fleet metrics and JSON logs on `c`.

    `env`: the deployment's settings (`spawner.environment.read_environment`).
    """
    env = read_environment() if env is None else env
    data_dir = Path(data_dir)
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []

    json_logs = env[JSON_LOGS_ENV]
    if json_logs:
        c.JupyterHub.logging_config = logging_config()

    snapshot = data_dir / SNAPSHOT_FILE
    register_fleet_metrics(snapshot)

    reclaim = GpuReclaim(config=c)
    if not env["CUDASPAWNER_GPU_RECLAIM"]:
        reclaim.enabled = False
    inventory = (
        c.CUDADockerSpawner.gpu_inventory if "gpu_inventory" in c.CUDADockerSpawner else "nvml"
    )
    bind_url = c.JupyterHub.bind_url if "bind_url" in c.JupyterHub else "http://:8000"
    cert = c.JupyterHub.ssl_cert if "ssl_cert" in c.JupyterHub else ""
    # Our own self-signed certificate is its own authority; an admin's is checked against
    # the system's authorities.
    proxy_ca = cert if cert and Path(cert).resolve().is_relative_to(data_dir.resolve()) else None
    # Servers on their own host names (subdomain_host): the service reaches them there.
    subdomain_host = c.JupyterHub.subdomain_host if "subdomain_host" in c.JupyterHub else ""
    domain = urlparse(subdomain_host).hostname or ""
    settings_path = data_dir / "operations.json"
    # The line for busy GPUs, whose places the service starts again after a hub restart.
    spawner = c.CUDADockerSpawner
    line = Path(spawner.gpu_line_file) if "gpu_line_file" in spawner else data_dir / LINE_FILE
    shares = spawner.gpu_line_group_shares if "gpu_line_group_shares" in spawner else {}
    usage = GpuUsage(config=c)
    document = service_settings(
        reclaim,
        inventory,
        proxy_address(bind_url),
        proxy_ca,
        snapshot,
        domain,
        line,
        shares,
        usage.url(data_dir) if usage.enabled else "",
        list(usage.budgets),
        usage.stop_over_budget,
    )
    settings_path.write_text(json.dumps(document, indent=2))
    settings_path.chmod(0o600)
    port = env["CUDASPAWNER_ADMIN_PAGE_PORT"] or _free_port()
    service_env = {SETTINGS_ENV: str(settings_path), "PYTHONPATH": _source_root()}
    if json_logs:
        service_env[JSON_LOGS_ENV] = "1"
    services.append(
        {
            "name": SERVICE_NAME,
            "url": f"http://127.0.0.1:{port}",
            "command": [sys.executable, "-m", "spawner.services"],
            "environment": service_env,
            "oauth_no_confirm": True,
            # Anyone may be sent through OAuth; the page itself answers 403 to non-admins.
            "oauth_client_allowed_scopes": [],
        }
    )
    roles.append(
        {"name": "cudaspawner-operations", "services": [SERVICE_NAME], "scopes": SERVICE_SCOPES}
    )

    seconds = env["CUDASPAWNER_IDLE_TIMEOUT"]  # None: "off"
    if seconds is not None:
        if importlib.util.find_spec("jupyterhub_idle_culler") is None:
            print(
                "cudaspawner: WARNING: jupyterhub-idle-culler is not installed; idle servers "
                "are not culled (pip install 'cudaspawner[hub]').",
                file=sys.stderr,
            )
        else:
            # It looks every 10 minutes, or twice per timeout when that is shorter.
            every = max(1, min(600, seconds // 2))
            # Through log_redaction: not our code, but its log is the hub's.
            command = [
                sys.executable,
                "-m",
                "spawner.host.log_redaction",
                "jupyterhub_idle_culler",
                f"--timeout={seconds}",
                f"--cull-every={every}",
            ]
            if c.JupyterHub.get("internal_ssl"):
                # The hub's API speaks internal TLS: the culler needs the internal
                # authority (and a client certificate) or every run fails, unseen.
                command += [
                    "--ssl-enabled=true",
                    f"--internal-certs-location={c.JupyterHub.internal_certs_location}",
                ]
            services.append(
                {
                    "name": CULLER_NAME,
                    "command": command,
                    "environment": {"PYTHONPATH": _source_root()},
                }
            )
            roles.append(
                {"name": "idle-culler", "services": [CULLER_NAME], "scopes": CULLER_SCOPES}
            )
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


def _source_root() -> str:
    """The directory holding the `spawner` package, for a service started from a checkout."""
    return str(Path(__file__).resolve().parents[2])
