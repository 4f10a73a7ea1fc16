"""cudaspawner's default deployment: one GPU (or CPU) host, JupyterHub + configurable-http-proxy.

Every knob an admin is likely to change reads an environment variable first, so the same
file serves `scripts/up.sh` and the test suite. Secrets are generated on first start into
the data directory (mode 0600) and never committed.
"""

import os
import secrets
import stat
from pathlib import Path

import docker

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

data_dir = Path(os.environ.get("CUDASPAWNER_DATA", "/var/lib/cudaspawner"))
data_dir.mkdir(parents=True, exist_ok=True)
network = os.environ.get("CUDASPAWNER_NETWORK", "cudaspawner")


def _secret_file(name: str, make) -> str:
    """Read a secret from the data directory, generating it (mode 0600) on first start."""
    path = data_dir / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as f:
            f.write(make())
    return path.read_text().strip()


def _network_gateway(name: str) -> str:
    """The host's address on the user containers' Docker network (created if missing)."""
    client = docker.from_env()
    try:
        net = client.networks.get(name)
    except docker.errors.NotFound:
        net = client.networks.create(name, driver="bridge")
        net.reload()
    return net.attrs["IPAM"]["Config"][0]["Gateway"]


# --- the hub ---------------------------------------------------------------------------
c.JupyterHub.bind_url = os.environ.get("CUDASPAWNER_BIND_URL", "http://:8000")
c.JupyterHub.db_url = f"sqlite:///{data_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(data_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(data_dir / "jupyterhub-proxy.pid")
c.ConfigurableHTTPProxy.api_url = os.environ.get(
    "CUDASPAWNER_PROXY_API_URL", "http://127.0.0.1:8001"
)
# Containers reach the hub on their network's gateway; the hub listens there and nowhere else.
gateway = os.environ.get("CUDASPAWNER_HUB_IP") or _network_gateway(network)
c.JupyterHub.hub_ip = gateway
c.JupyterHub.hub_port = int(os.environ.get("CUDASPAWNER_HUB_PORT", "8081"))
# Restarting the hub (an upgrade, a config change) must not kill users' running servers;
# the hub finds them again and rebuilds its GPU table from their labels.
c.JupyterHub.cleanup_servers = False

# --- login: JupyterHub's shared-password authenticator, generated passwords -------------
# (the HTTPS + NativeAuthenticator deployment replaces this; see the README)
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = _secret_file(
    "user-password", lambda: secrets.token_urlsafe(12)
)
c.SharedPasswordAuthenticator.admin_password = _secret_file(
    "admin-password", lambda: secrets.token_urlsafe(32)
)
c.Authenticator.admin_users = {"admin"}
c.Authenticator.allow_all = True

# --- the spawner -------------------------------------------------------------------------
c.JupyterHub.spawner_class = "cuda-docker"
c.DockerSpawner.image = os.environ.get("CUDASPAWNER_IMAGE", "cudaspawner/cpu:latest")
c.DockerSpawner.network_name = network
c.DockerSpawner.use_internal_ip = True
# Images are built on this host (images/build.sh); there is no registry to pull from.
c.DockerSpawner.pull_policy = os.environ.get("CUDASPAWNER_PULL_POLICY", "never")
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 120

# Site-specific settings (profiles, GPU inventory, ...) live beside the data, not here.
extra = os.environ.get("CUDASPAWNER_EXTRA_CONFIG") or str(data_dir / "cudaspawner_config.py")
if Path(extra).exists():
    load_subconfig(extra)  # noqa: F821  (provided by JupyterHub)

# Stop now, not at the first spawn, if the profiles are broken.
from spawner.config_check import check_hub_config  # noqa: E402

check_hub_config(c)
