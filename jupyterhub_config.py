"""cudaspawner's default deployment: one GPU (or CPU) host, JupyterHub + configurable-http-proxy.

Secure by default: HTTPS on the public port, NativeAuthenticator with a generated first
admin, internal TLS between hub, proxy and user containers, secrets generated on first
start into the data directory (mode 0600) and never committed. Every knob an admin is
likely to change reads an environment variable first, all of them parsed once by
`spawner.environment` (its table is the README's configuration section), so the same file
serves `scripts/up.sh` and the test suite.
"""

import atexit
import secrets
import signal
import socket
import sys
from pathlib import Path

import docker

from spawner.docker_edge.gpu_line import LINE_TEMPLATES
from spawner.environment import SettingError, read_environment
from spawner.host import hub_host_guard, log_redaction
from spawner.host.deployment import (
    NetworkProblem,
    ensure_network,
    ensure_self_signed_cert,
    secret_file,
    split_names,
)
from spawner.host.firewall import bridge_name, close_host_ports, restrict_host_access
from spawner.host.internal_ssl import renew_hub_cert_lacking
from spawner.host.security_headers import HEADERS
from spawner.host.user_origins import (
    SAME_ORIGIN_WARNING,
    OriginProblem,
    certificate_names,
    certificate_problem,
    check_domain,
    subdomain_host,
)

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

# No token, password, cookie or key in the hub's log, whoever logs it
# (spawner/host/log_redaction.py).
log_redaction.install()

# JupyterHub stops its managed services (SSH gateway, GPU operations, idle culler) with
# SIGINT and waits 10 s each before SIGTERM. A hub started in the background of a script
# (scripts/up.sh: `setsid nohup ... &`) has SIGINT ignored, as POSIX has it, and would hand
# that on to the services it starts: stopping the hub would then take over 30 s, past the
# patience of most supervisors, whose SIGKILL leaves the hub's firewall rule open.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# Every CUDASPAWNER_* variable, checked together: a bad value stops the hub here.
try:
    env = read_environment()
except SettingError as e:
    raise SystemExit(f"cudaspawner: {e}") from None

data_dir = Path(env["CUDASPAWNER_DATA"])
data_dir.mkdir(parents=True, exist_ok=True)
data_dir.chmod(0o700)
network = env["CUDASPAWNER_NETWORK"]
tls = env["CUDASPAWNER_TLS"]
internal_ssl = env["CUDASPAWNER_INTERNAL_SSL"]
auth = env["CUDASPAWNER_AUTH"]
# Each user's server on its own host name (alice.<domain>), the hub on <domain>: a page a
# user's server serves can then never act as whoever opens it (docs/threat-model.md).
user_subdomains = env["CUDASPAWNER_USER_SUBDOMAINS"]
domain = env["CUDASPAWNER_DOMAIN"]
if user_subdomains:
    try:
        domain = check_domain(domain)
    except OriginProblem as e:
        raise SystemExit(f"cudaspawner: {e}") from None


# --- the hub and the proxy ---------------------------------------------------------------
c.JupyterHub.bind_url = env["CUDASPAWNER_BIND_URL"]
if user_subdomains:
    c.JupyterHub.subdomain_host = subdomain_host(c.JupyterHub.bind_url, domain)
    # The hub's pages only on the hub's own name, never on a user's
    # (spawner/host/hub_host_guard.py).
    hub_host_guard.install(domain, c.JupyterHub.subdomain_host)
    # `__Host-` cookies cannot be set or overwritten by a user's server from its own name
    # (cookie tossing); they need HTTPS.
    c.JupyterHub.cookie_host_prefix_enabled = tls
else:
    print(f"cudaspawner: WARNING: {SAME_ORIGIN_WARNING.format(domain=domain)}", file=sys.stderr)
# Where people open the hub (up.sh prints it).
(data_dir / "public-url").write_text(
    (c.JupyterHub.subdomain_host if user_subdomains else c.JupyterHub.bind_url) + "/\n"
)
c.JupyterHub.db_url = f"sqlite:///{data_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(data_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(data_dir / "jupyterhub-proxy.pid")
# With internal TLS the proxy's API speaks TLS too (client certificates both ways).
proxy_api_port = env["CUDASPAWNER_PROXY_API_PORT"]
c.ConfigurableHTTPProxy.api_url = (
    f"{'https' if internal_ssl else 'http'}://127.0.0.1:{proxy_api_port}"
)
# Generated once, 0600, reused on restart: a restarted hub keeps its proxy and its secrets.
c.ConfigurableHTTPProxy.auth_token = secret_file(data_dir / "proxy-token")
c.CryptKeeper.keys = [secret_file(data_dir / "crypt-key")]
# Containers reach the hub on their network's gateway; the hub listens there and nowhere else.
# The network keeps containers from reaching each other, and the host's firewall lets them
# reach only the hub's port there (docs/threat-model.md).
hub_port = env["CUDASPAWNER_HUB_PORT"]
gateway = env["CUDASPAWNER_HUB_IP"]
if not gateway:
    _docker = docker.from_env()
    try:
        gateway = ensure_network(_docker, network)
    except NetworkProblem as e:
        raise SystemExit(f"cudaspawner: {e}") from None
    if env["CUDASPAWNER_HOST_FIREWALL"]:
        # The hub's port is closed again when it exits (its own rule only: a second hub
        # started by mistake on this port must not close the running hub's).
        _bridge = bridge_name(_docker.networks.get(network).attrs)
        atexit.register(close_host_ports, _bridge, [hub_port])
        _warning = restrict_host_access(_docker, network, [hub_port])
        if _warning:
            print(f"cudaspawner: WARNING: {_warning}", file=sys.stderr, flush=True)
c.JupyterHub.hub_ip = gateway
c.JupyterHub.hub_port = hub_port
# Restarting the hub (an upgrade, a config change) must not kill users' running servers;
# the hub finds them again and rebuilds its GPU table from their labels.
c.JupyterHub.cleanup_servers = False

if tls:
    # The admin's certificate when given, else a self-signed one made on first start.
    cert, key = env["CUDASPAWNER_SSL_CERT"], env["CUDASPAWNER_SSL_KEY"]
    if not (cert and key):
        # This machine's names plus the admin's (host names or addresses), nothing else.
        public = env["CUDASPAWNER_PUBLIC_NAMES"]
        names = [
            *(certificate_names(domain) if user_subdomains else []),
            "localhost",
            socket.getfqdn(),
            "127.0.0.1",
            *public,
        ]
        dns, ips = split_names(names)
        cert_path, key_path, _ = ensure_self_signed_cert(data_dir, dns, ips)
        cert, key = str(cert_path), str(key_path)
    elif user_subdomains:
        problem = certificate_problem(Path(cert).read_bytes(), domain)
        if problem:
            raise SystemExit(f"cudaspawner: {problem}")
    c.JupyterHub.ssl_cert = cert
    c.JupyterHub.ssl_key = key
    # Cookies only ever travel over TLS and never ride along on another site's requests
    # (Lax: a link from elsewhere still opens the hub logged in; a form posted from
    # elsewhere does not carry them). The browser must keep using HTTPS for a year, and
    # hub pages can be neither framed (click-jacking) nor host plugins.
    c.JupyterHub.tornado_settings = {
        "cookie_options": {"secure": True, "samesite": "Lax"},
        "xsrf_cookie_kwargs": {"secure": True, "samesite": "Lax"},
        "headers": dict(HEADERS),
    }

if internal_ssl:
    c.JupyterHub.internal_ssl = True
    c.JupyterHub.internal_certs_location = str(data_dir / "internal-ssl")
    # The hub's certificate must name the address containers use to reach it.
    c.JupyterHub.trusted_alt_names = [f"IP:{gateway}", "IP:127.0.0.1", "DNS:localhost"]
    if user_subdomains:
        # The proxy reaches the hub on users' names too (a stopped server's page), and checks
        # the hub's certificate against the name asked for.
        c.JupyterHub.trusted_alt_names.append(f"DNS:*.{domain}")
        renew_hub_cert_lacking(c.JupyterHub.internal_certs_location, f"*.{domain}")

# --- login --------------------------------------------------------------------------------
if auth == "native":
    # Sign-up, admin approval, bcrypt-hashed passwords, one user-name policy
    # (spawner/accounts/usernames.py). After 5 failed logins from one address, that address waits
    # 2 s, then 4 s, ... up to 600 s before trying that account again; other addresses are
    # not slowed. The first admin ("admin") is created on first start; its password is
    # printed once.
    c.JupyterHub.authenticator_class = "cuda-native"
    c.NativeAuthenticator.open_signup = False
    c.NativeAuthenticator.minimum_password_length = 10
    c.NativeAuthenticator.check_common_password = True
    c.NativeAuthenticator.allowed_failed_logins = 5
    c.NativeAuthenticator.seconds_before_next_try = 600
    c.Authenticator.allow_all = True  # everyone the admin approved
elif auth == "shared-password":
    # JupyterHub's own, for a quick trial: generated passwords in the data directory.
    c.JupyterHub.authenticator_class = (
        "spawner.accounts.authenticators.CUDASharedPasswordAuthenticator"
    )
    c.SharedPasswordAuthenticator.user_password = secret_file(
        data_dir / "user-password", lambda: secrets.token_urlsafe(12)
    )
    c.SharedPasswordAuthenticator.admin_password = secret_file(
        data_dir / "admin-password", lambda: secrets.token_urlsafe(32)
    )
    c.Authenticator.admin_users = {"admin"}
    c.Authenticator.allow_all = True

# --- the spawner -------------------------------------------------------------------------
c.JupyterHub.spawner_class = "cuda-docker"
c.DockerSpawner.image = env["CUDASPAWNER_IMAGE"]
# A dedicated network; containers publish no port on any host interface.
c.DockerSpawner.network_name = network
c.DockerSpawner.use_internal_ip = True
# Images are built on this host (images/build.sh); there is no registry to pull from.
c.DockerSpawner.pull_policy = env["CUDASPAWNER_PULL_POLICY"]
c.Spawner.default_url = "/lab"
# Every server gets a memory and CPU limit; a profile's own limits override these.
# Default: half this host's memory and CPUs (CUDASPAWNER_MEM_LIMIT / CUDASPAWNER_CPU_LIMIT,
# "none" for no limit).
c.Spawner.mem_limit = env["CUDASPAWNER_MEM_LIMIT"]
c.Spawner.cpu_limit = env["CUDASPAWNER_CPU_LIMIT"]
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 120
# JupyterHub's pending page with the line for busy GPUs' place in the title and a browser
# notification when the server is ready (a site config that sets its own template paths
# should keep this one after them).
c.JupyterHub.template_paths = [str(LINE_TEMPLATES)]

# Site-specific settings (profiles, GPU inventory, ...) live beside the data, not here.
extra = env["CUDASPAWNER_EXTRA_CONFIG"]
if Path(extra).exists():
    load_subconfig(extra)  # noqa: F821  (provided by JupyterHub)

# --- default profiles ----------------------------------------------------------------------
# A site with no profiles of its own still gets a useful platform: "CPU only" and
# "PyTorch 2.9 / CUDA 12.8" (1 .. N GPUs of this host; unavailable, with the reason, on a
# host without GPUs). Site profiles replace both.
if "profiles" not in c.CUDADockerSpawner:
    from spawner.planning.default_profiles import default_profiles  # noqa: E402

    cpu_image = c.DockerSpawner.image  # as the site left it (CUDASPAWNER_IMAGE or its config)
    cuda_image = env["CUDASPAWNER_CUDA_IMAGE"]

    async def _default_profiles(spawner) -> list[dict]:
        # The GPU count is the hub's own inventory (read once, off the event loop).
        host = await spawner.gpu_host()
        return default_profiles(host.total, cpu_image=cpu_image, cuda_image=cuda_image)

    c.CUDADockerSpawner.profiles = _default_profiles

# --- SSH -----------------------------------------------------------------------------------
# One SSH gateway (port 2222) into users' running servers, keys managed on a hub page
# (docs/ssh.md). After the site's config, so its services are kept. CUDASPAWNER_SSH=0: none.
from spawner.ssh import configure_ssh  # noqa: E402

configure_ssh(c, data_dir, c.JupyterHub.get("subdomain_host") or c.JupyterHub.bind_url, env)

# --- operations -----------------------------------------------------------------------------
# Idle-GPU reclaim and the GPU admin page (one service), jupyterhub-idle-culler for idle
# servers of any kind, fleet figures on /hub/metrics, JSON-lines logs on request
# (docs/operations.md).
from spawner.services.operations import configure_operations  # noqa: E402

configure_operations(c, data_dir, env)

# Stop now, not at the first spawn, if the profiles are broken.
from spawner.host.config_check import check_hub_config  # noqa: E402

check_hub_config(c)
