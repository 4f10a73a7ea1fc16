"""The default deployment's environment variables: one table, read and checked in one place.

`SETTINGS` names each variable, the setting it decides, its default and its meaning;
`read_environment` parses all of them once, when the hub loads its configuration, so a
mistake stops the hub at start with a sentence naming the variable. `jupyterhub_config.py`,
the operations service's and the SSH gateway's set-up read their values from it, and the
README's table is printed from it (`python -m spawner.environment`). Pure, and it imports
no other part of the hub side, so any part may use it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .sizes import ENVIRONMENT, read_size

CUDA_IMAGE = "cudaspawner/pytorch-cuda:2.9-cuda12.8"
_NONE = ("none", "off", "unlimited", "0")


class SettingError(ValueError):
    """An environment variable whose value cannot be used; the message names it."""


def flag(value: str | None, default: bool) -> bool:
    """An on/off setting: empty means `default`; 0, off, false, no mean off."""
    value = (value or "").strip().lower()
    return default if not value else value not in ("0", "off", "false", "no")


def default_limits(mem_bytes: int, cpus: int) -> tuple[str, float]:
    """Site defaults when the admin sets none: half the host's memory (whole GiB, at
    least 1G) and half its CPUs (at least 1), so one server can never starve the hub or
    take the whole machine."""
    gib = max(1, mem_bytes // (2 * 1024**3))
    return f"{gib}G", float(max(1, cpus // 2))


def parse_mem_limit(value: str) -> str | None:
    """A memory limit: "8G", "512M", "none" (no limit)."""
    if value.strip().lower() in _NONE:
        return None
    read = read_size(value, ENVIRONMENT)
    if read is None or read[0] <= 0:
        raise SettingError(
            f"CUDASPAWNER_MEM_LIMIT={value!r} is not a memory size: use a number with K, M, "
            "G or T (such as 8G or 512M), or 'none' for no limit."
        )
    number = value.strip().rstrip("bB").rstrip("kmgtKMGT").strip()
    return f"{number}{read[1].upper()}"


def parse_cpu_limit(value: str, host_cpus: int) -> float | None:
    """A CPU limit: "2", "0.5", "none" (no limit); at most the host's CPUs."""
    if value.strip().lower() in _NONE:
        return None
    try:
        cpus = float(value)
    except ValueError:
        cpus = -1.0
    if not 0 < cpus <= host_cpus:
        raise SettingError(
            f"CUDASPAWNER_CPU_LIMIT={value!r} must be a number of CPUs above 0 and at most "
            f"this host's {host_cpus} (such as 2 or 0.5), or 'none' for no limit."
        )
    return cpus


@dataclass(frozen=True)
class Setting:
    """One environment variable of the default deployment."""

    name: str
    default: str  # as written in the environment; "" where it is worked out (`shown`)
    sets: str  # the trait or part of the deployment it decides
    meaning: str
    kind: str = "text"  # how the value is read: see `_PARSERS`
    shown: str = ""  # the default as the docs show it, where it is not `default`
    choices: tuple[str, ...] = ()


SETTINGS: tuple[Setting, ...] = (
    Setting("CUDASPAWNER_DATA", "/var/lib/cudaspawner", "the data directory (0700)",
            "hub database, secrets, certificates, site config"),
    Setting("CUDASPAWNER_NETWORK", "cudaspawner", "DockerSpawner.network_name",
            "Docker network of the user containers"),
    Setting("CUDASPAWNER_IMAGE", "cudaspawner/cpu:latest", "DockerSpawner.image",
            "image when no profile names one (the CPU profile's)"),
    Setting("CUDASPAWNER_CUDA_IMAGE", CUDA_IMAGE, "the default PyTorch / CUDA profile",
            "image of the default GPU profile"),
    Setting("CUDASPAWNER_PULL_POLICY", "never", "DockerSpawner.pull_policy",
            "images are built here; `ifnotpresent` with a registry",
            choices=("never", "ifnotpresent", "always", "skip")),
    Setting("CUDASPAWNER_BIND_URL", "", "JupyterHub.bind_url",
            "public URL the proxy listens on",
            shown="`https://:8443` (`http://:8000` without TLS)"),
    Setting("CUDASPAWNER_TLS", "on", "JupyterHub.ssl_cert / ssl_key", "HTTPS on the public port",
            kind="flag"),
    Setting("CUDASPAWNER_SSL_CERT", "", "JupyterHub.ssl_cert", "your certificate",
            shown="generated"),
    Setting("CUDASPAWNER_SSL_KEY", "", "JupyterHub.ssl_key", "your certificate's key",
            shown="generated"),
    Setting("CUDASPAWNER_PUBLIC_NAMES", "", "the generated certificate",
            "extra DNS names or IP addresses (comma-separated) it names", kind="names"),
    Setting("CUDASPAWNER_DOMAIN", "hub.localhost", "JupyterHub.subdomain_host",
            "the hub's public name; each user's server is served on `<user>.<name>` "
            "([docs/setup.md](docs/setup.md#names-one-origin-per-server))"),
    Setting("CUDASPAWNER_USER_SUBDOMAINS", "on", "JupyterHub.subdomain_host",
            "one origin per user server; off only where wildcard DNS is impossible",
            kind="flag"),
    Setting("CUDASPAWNER_INTERNAL_SSL", "on", "JupyterHub.internal_ssl",
            "TLS between hub, proxy and containers", kind="flag"),
    Setting("CUDASPAWNER_AUTH", "native", "JupyterHub.authenticator_class",
            "`native` (sign-up, approval) or `shared-password` (a quick trial)",
            choices=("native", "shared-password")),
    Setting("CUDASPAWNER_HUB_IP", "", "JupyterHub.hub_ip",
            "address the hub listens on for containers", shown="the network's gateway"),
    Setting("CUDASPAWNER_HUB_PORT", "8081", "JupyterHub.hub_port",
            "port the hub listens on for containers", kind="port"),
    Setting("CUDASPAWNER_PROXY_API_PORT", "8001", "ConfigurableHTTPProxy.api_url",
            "the proxy's API port (loopback)", kind="port"),
    Setting("CUDASPAWNER_HOST_FIREWALL", "on", "the host's firewall rules",
            "containers reach only the hub's API port and DNS on the host", kind="flag"),
    Setting("CUDASPAWNER_MEM_LIMIT", "", "Spawner.mem_limit",
            "every server's memory limit unless its profile sets one (`none`: no limit)",
            kind="memory", shown="half the host's"),
    Setting("CUDASPAWNER_CPU_LIMIT", "", "Spawner.cpu_limit",
            "every server's CPU limit unless its profile sets one (`none`: no limit)",
            kind="cpus", shown="half the host's"),
    Setting("CUDASPAWNER_EXTRA_CONFIG", "", "a config file loaded last",
            "site config (profiles, GPU inventory, ...)",
            shown="`$CUDASPAWNER_DATA/cudaspawner_config.py`"),
    Setting("CUDASPAWNER_GPU_INVENTORY", "", "CUDADockerSpawner.gpu_inventory",
            "the host's GPUs, for a hub that cannot ask NVML ([docs/gpus.md](docs/gpus.md))",
            shown="NVML"),
    Setting("CUDASPAWNER_GPU_RECLAIM", "on", "GpuReclaim.enabled",
            "idle-GPU reclaim ([docs/operations.md](docs/operations.md))", kind="flag"),
    Setting("CUDASPAWNER_IDLE_TIMEOUT", "3600", "jupyterhub-idle-culler --timeout",
            "seconds before an idle server is culled (`off`: no culler)",
            kind="seconds_or_off"),
    Setting("CUDASPAWNER_JSON_LOGS", "off", "JupyterHub.logging_config",
            "one JSON object per log line (hub and services)", kind="flag"),
    Setting("CUDASPAWNER_ADMIN_PAGE_PORT", "0", "the GPU admin page's port (loopback)",
            "`0`: a free port", kind="port"),
    Setting("CUDASPAWNER_SSH", "on", "the SSH gateway service",
            "SSH into one's own server ([docs/ssh.md](docs/ssh.md))", kind="flag"),
    Setting("CUDASPAWNER_SSH_PORT", "2222", "the SSH gateway's port", "where users connect",
            kind="port"),
    Setting("CUDASPAWNER_SSH_IP", "", "the SSH gateway's address", "where it listens",
            shown="all addresses"),
    Setting("CUDASPAWNER_SSH_HOST", "", "the SSH keys page", "host name shown to users",
            shown="the hub's public name"),
    Setting("CUDASPAWNER_SSH_PAGE_PORT", "0", "the SSH keys page's port (loopback)",
            "`0`: a free port", kind="port"),
    Setting("CUDASPAWNER_SSH_AUTOSTART", "off", "the SSH gateway",
            "a login starts a stopped server", kind="flag"),
)  # fmt: skip
BY_NAME = {s.name: s for s in SETTINGS}


def _port(setting: Setting, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise SettingError(f"{setting.name}={text!r} is not a port number (0 to 65535).")
    return port


def _seconds_or_off(setting: Setting, text: str) -> int | None:
    if text.lower() in ("off", "0", "none"):
        return None
    try:
        seconds = int(float(text))
    except ValueError:
        raise SettingError(
            f"{setting.name}={text!r} is not a number of seconds (or 'off')."
        ) from None
    if seconds <= 0:
        raise SettingError(f"{setting.name}={text!r} must be above 0 (or 'off').")
    return seconds


def _names(setting: Setting, text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


_PARSERS: dict[str, Callable[[Setting, str], Any]] = {
    "text": lambda s, text: text,
    "flag": lambda s, text: flag(text, False),  # `text` is the default where unset
    "port": _port,
    "seconds_or_off": _seconds_or_off,
    "names": _names,
}


def setting(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting of `SETTINGS`, parsed (the limits' defaults are not worked out here)."""
    environ = os.environ if environ is None else environ
    return _parse(BY_NAME[name], environ, ("", 0.0), os.cpu_count() or 1)


def _parse(s: Setting, environ: Mapping[str, str], limits: tuple[str, float], cpus: int) -> Any:
    text = (environ.get(s.name) or "").strip() or s.default
    if s.choices and text not in s.choices:
        raise SettingError(f"{s.name}={text!r}: use one of {', '.join(s.choices)}.")
    if s.kind == "memory":
        return parse_mem_limit(text or limits[0])
    if s.kind == "cpus":
        return parse_cpu_limit(text or str(limits[1]), cpus)
    return _PARSERS[s.kind](s, text)


def read_environment(
    environ: Mapping[str, str] | None = None,
    *,
    host_memory: int | None = None,
    host_cpus: int | None = None,
) -> dict[str, Any]:
    """Every setting of `SETTINGS`, parsed; SettingError names the first bad one.

    Values: text as given (the default where unset or empty), flags as bool, ports as int,
    names as a list, the idle timeout as seconds or None, limits as JupyterHub takes them.
    """
    environ = os.environ if environ is None else environ
    cpus = host_cpus or os.cpu_count() or 1
    if host_memory is None:
        host_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limits = default_limits(host_memory, cpus)
    values = {s.name: _parse(s, environ, limits, cpus) for s in SETTINGS}
    tls = values["CUDASPAWNER_TLS"]
    values["CUDASPAWNER_BIND_URL"] = values["CUDASPAWNER_BIND_URL"] or (
        "https://:8443" if tls else "http://:8000"
    )
    values["CUDASPAWNER_EXTRA_CONFIG"] = values["CUDASPAWNER_EXTRA_CONFIG"] or os.path.join(
        values["CUDASPAWNER_DATA"], "cudaspawner_config.py"
    )
    return values


def markdown_table() -> str:
    """The README's table of these variables (between its `environment table` marks)."""
    rows = ["| variable | default | sets | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = s.shown or (f"`{s.default}`" if s.default else "")
        rows.append(f"| `{s.name}` | {default} | {s.sets} | {s.meaning} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
