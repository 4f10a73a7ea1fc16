"""First-start set-up for the default deployment: secrets and the hub's TLS certificate.

Everything is generated into the hub's data directory with mode 0600 on first start and
reused afterwards, so a restart keeps sessions, tokens and the certificate valid, and no
secret ever lives in the repository.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path


def secret_file(path: Path, make: Callable[[], str] = lambda: secrets.token_hex(32)) -> str:
    """The secret stored at `path`, created (0600, never world- or group-readable) if missing."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as f:
            f.write(make())
    # An admin may have created it by hand with a lax umask: tighten, don't trust.
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_self_signed_cert(
    directory: Path, hostnames: Iterable[str] = ("localhost",), ips: Iterable[str] = ("127.0.0.1",)
) -> tuple[Path, Path, bool]:
    """(cert, key, created): a self-signed certificate for the hub's public port.

    Generated with `cryptography` on first start (EC P-256, one year, SANs for the given
    names and addresses); the key is written 0600. Replace both files with your own to use a
    real certificate; they are only generated when missing.
    """
    cert_path, key_path = directory / "hub-cert.pem", directory / "hub-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path, False

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    hostnames, ips = list(hostnames), list(ips)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else "hub")]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.DNSName(h) for h in hostnames] + [
        x509.IPAddress(ipaddress.ip_address(i)) for i in ips
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, True


NETWORK_LABEL = "org.cudaspawner.network"


def ensure_network(client, name: str) -> str:
    """The gateway address of the user containers' bridge network, made if missing.

    The network gets an explicit subnet (the one Docker would have picked): Docker only
    lets a container have a planned address, which internal TLS needs, on a network whose
    subnet was configured by the user.
    """
    import docker.errors
    import docker.types

    try:
        net = client.networks.get(name)
    except docker.errors.NotFound:
        net = None
    if net is not None and NETWORK_LABEL not in (net.attrs.get("Labels") or {}):
        if net.attrs.get("Containers"):
            return net.attrs["IPAM"]["Config"][0]["Gateway"]  # in use: leave it alone
        net.remove()
        net = None
    if net is None:
        probe = client.networks.create(name, driver="bridge")
        probe.reload()
        subnet = probe.attrs["IPAM"]["Config"][0]["Subnet"]
        gateway = probe.attrs["IPAM"]["Config"][0]["Gateway"]
        probe.remove()
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=subnet, gateway=gateway)]
        )
        net = client.networks.create(name, driver="bridge", ipam=ipam, labels={NETWORK_LABEL: "1"})
        net.reload()
    return net.attrs["IPAM"]["Config"][0]["Gateway"]
