"""Internal TLS between the hub, the proxy and user containers, done right for Docker.

DockerSpawner's own support has three traps on a hub that runs on the host: it names the
container by a hostname the host cannot resolve, it stages certificates with a `busybox`
image it must pull, and it leaves the user's private key world-readable (0644) in the
container. Here each container gets a planned address on its network, that address goes
into its certificate, the hub connects to it there, and the key is 0600 and owned by the
container's user. The pure parts (address choice, the archive) are functions of data.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import os
import random
import tarfile
from collections.abc import Awaitable, Callable, Iterable, Mapping


class NoFreeAddress(RuntimeError):
    """Every address of the network is taken."""


def pick_free_address(subnet: str, gateway: str, used: Iterable[str], start: int = 0) -> str:
    """A host address of `subnet` that is neither the gateway nor in `used`.

    The first free one from the `start`-th host address on (wrapping around): 0 gives the
    lowest. Hubs sharing a network each start at a random place, so two of them planning
    at the same moment rarely pick the same address (and `is_address_taken` covers the rest).
    """
    taken = {ipaddress.ip_address(a.split("/")[0]) for a in used if a}
    taken.add(ipaddress.ip_address(gateway))
    network = ipaddress.ip_network(subnet, strict=False)
    first = int(network.network_address) + 1
    size = max(network.num_addresses - 2, 0)  # without the network and broadcast addresses
    for step in range(size):
        host = ipaddress.ip_address(first + (start + step) % size)
        if host not in taken:
            return str(host)
    raise NoFreeAddress(f"no free address left in {subnet}")


def is_address_taken(exc: BaseException) -> bool:
    """True for the engine's refusal of a planned address another container holds."""
    return "address already in use" in str(exc).lower()


class AddressPlanner:
    """Addresses promised to servers whose containers are not created yet, one per server.

    One per hub process (`shared`): two spawns planning at once must not pick the same
    address, and the network's own list only shows containers that exist.
    """

    _instance: AddressPlanner | None = None

    def __init__(self, rng: random.Random | None = None) -> None:
        self._planned: dict[str, str] = {}
        self._avoid: set[str] = set()  # found taken by a container the network did not show
        self._lock: asyncio.Lock | None = None
        self._rng = rng or random.Random()

    @classmethod
    def shared(cls) -> AddressPlanner:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    async def plan(self, server_key: str, inspect_network: Callable[[], Awaitable[dict]]) -> str:
        """The address of `server_key`'s next container (the same one until `forget`)."""
        if server_key in self._planned:
            return self._planned[server_key]
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            net = await inspect_network()
            ipam = net["IPAM"]["Config"][0]
            used = [c["IPv4Address"] for c in (net.get("Containers") or {}).values()]
            others = [a for k, a in self._planned.items() if k != server_key]
            taken = [*used, *others, *self._avoid]
            start = self._rng.randrange(1 << 24)
            address = pick_free_address(ipam["Subnet"], ipam["Gateway"], taken, start)
            self._planned[server_key] = address
        return address

    def forget(self, server_key: str, taken: bool = False) -> None:
        """Drop a server's planned address; `taken`: another container holds it, never
        plan it again in this hub process (another hub planned it at the same moment)."""
        address = self._planned.pop(server_key, None)
        if taken and address:
            self._avoid.add(address)


def cert_archive(
    paths: Mapping[str, str], uid: int, gid: int, directory: str = "/certs"
) -> tuple[io.BytesIO, dict[str, str]]:
    """A tar of the hub-made certificate files, owned by the container user.

    The private key ("keyfile") is 0600; certificates and the CA bundle are 0644. Returns
    the archive and where each file will be inside the container.
    """
    buf = io.BytesIO()
    in_container: dict[str, str] = {}
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for key, hub_path in paths.items():
            name = os.path.basename(hub_path)
            in_container[key] = f"{directory}/{name}"
            with open(hub_path, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(name=name)
            info.size = len(data)
            info.uid, info.gid = uid, gid
            info.mode = 0o600 if key == "keyfile" else 0o644
            info.mtime = int(os.stat(hub_path).st_mtime)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf, in_container


def numeric_ids(user: str) -> tuple[int, int] | None:
    """(uid, gid) from a Docker user string when it is numeric, else None."""
    uid, _, gid = user.partition(":")
    if uid.isdigit() and (gid.isdigit() or not gid):
        return int(uid), int(gid or uid)
    return None


def cert_owner(user: str) -> tuple[int, int]:
    """Who owns the certificates in the container; ValueError (a sentence) if not numeric."""
    ids = numeric_ids(user)
    if ids is None:
        raise ValueError(f"Internal TLS needs a numeric container_user (uid:gid), not {user!r}.")
    return ids


async def stage_certs(
    docker: Callable[..., Awaitable], host_config: dict, image: str, archive: io.BytesIO
) -> None:
    """Copy `archive` into the cert volume that `host_config` binds at /certs.

    `docker` is the spawner's off-loop Docker call; a stopped helper container made from
    `image` receives the files and is removed.
    """
    stager = await docker("create_container", image, volumes=["/certs"], host_config=host_config)
    try:
        await docker("put_archive", container=stager["Id"], path="/certs", data=archive)
    finally:
        await docker("remove_container", stager["Id"], force=True)


def renew_hub_cert_lacking(certs_location: str, dns_name: str) -> bool:
    """Drop the hub's internal certificate when it does not name `dns_name`, so JupyterHub
    makes a new one (signed by the same authority) at this start. True when dropped.

    JupyterHub makes it once and keeps it; a deployment that turns on one origin per user
    server needs `*.<domain>` in it, or the proxy refuses to reach the hub on users' names
    (it checks the hub's certificate against the name the browser asked for).
    """
    from certipy import Certipy, CertNotFoundError
    from cryptography import x509

    store = Certipy(store_dir=certs_location).store
    try:
        record = store.get_record("hub-internal")
        with open(record["files"]["cert"], "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
    except (CertNotFoundError, OSError, KeyError, ValueError, x509.ExtensionNotFound):
        return False
    if dns_name in names:
        return False
    store.remove_files("hub-internal", delete_dir=True)
    return True
