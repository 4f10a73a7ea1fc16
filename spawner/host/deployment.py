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

from spawner.host.firewall import bridge_name, drop_chain


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


def split_names(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) from names an admin gave, without duplicates, in order.

    An address must become an IP entry of the certificate: as a DNS entry a browser
    would not accept it for https://<address>/.
    """
    dns: list[str] = []
    ips: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        try:
            ip = str(ipaddress.ip_address(name.strip("[]")))
        except ValueError:
            if name.lower() not in dns:
                dns.append(name.lower())
        else:
            if ip not in ips:
                ips.append(ip)
    return dns, ips


def ensure_self_signed_cert(
    directory: Path, hostnames: Iterable[str] = ("localhost",), ips: Iterable[str] = ("127.0.0.1",)
) -> tuple[Path, Path, bool]:
    """(cert, key, created): a self-signed certificate for the hub's public port.

    Generated with `cryptography` (EC P-256, one year) for exactly the given names and
    addresses, as an end-entity certificate: `CA:FALSE`, key usage digitalSignature,
    extended key usage serverAuth only, so its key cannot sign certificates for other
    names. The key is written 0600. Generated when missing, and again when the file is a
    self-signed certificate that no longer fits (other names, a CA, no serverAuth, or
    expiring within 30 days), such as one made by an older cudaspawner. To use your own
    certificate, point CUDASPAWNER_SSL_CERT / CUDASPAWNER_SSL_KEY at it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    dns, addresses = split_names([*hostnames, *ips])
    cert_path, key_path = directory / "hub-cert.pem", directory / "hub-key.pem"
    if (
        cert_path.exists()
        and key_path.exists()
        and cert_fits(cert_path.read_bytes(), dns, addresses)
    ):
        return cert_path, key_path, False

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, (dns or addresses or ["hub"])[0][:64])]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.DNSName(h) for h in dns] + [
        x509.IPAddress(ipaddress.ip_address(i)) for i in addresses
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
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
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
    if key_path.stat().st_mode & 0o077:  # an older file keeps its mode through O_TRUNC
        key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, True


def cert_fits(pem: bytes, dns: list[str], addresses: list[str]) -> bool:
    """Whether an existing hub certificate can stay: anything not self-signed is the
    admin's own and always stays; a self-signed one must be exactly what we would make."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return True  # not ours to judge: leave the admin's file alone
    if cert.issuer != cert.subject:
        return True
    ext = cert.extensions
    try:
        if ext.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
        usages = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
        san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if list(usages) != [ExtendedKeyUsageOID.SERVER_AUTH]:
        return False
    have_dns = sorted(n.lower() for n in san.get_values_for_type(x509.DNSName))
    have_ips = sorted(str(i) for i in san.get_values_for_type(x509.IPAddress))
    if have_dns != sorted(dns) or have_ips != sorted(addresses):
        return False
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    return cert.not_valid_after_utc > soon


NETWORK_LABEL = "org.cudaspawner.network"
# Docker's bridge option that stops traffic between containers of the network.
ICC_OPTION = "com.docker.network.bridge.enable_icc"
NETWORK_OPTIONS = {ICC_OPTION: "false"}


class NetworkProblem(RuntimeError):
    """The users' network cannot be used as it is; `str(e)` says what to do."""


def isolating(attrs: dict) -> bool:
    """Whether a network (its `docker network inspect` data) blocks container-to-container
    traffic."""
    return str((attrs.get("Options") or {}).get(ICC_OPTION, "true")).lower() == "false"


def ensure_network(client, name: str) -> str:
    """The gateway address of the user containers' bridge network, made if missing.

    The network keeps containers from reaching each other (`enable_icc=false`); the host,
    where the hub and the proxy run, still reaches every container. It gets an explicit
    subnet (the one Docker would have picked): Docker only lets a container have a planned
    address, which internal TLS needs, on a network whose subnet was configured by the user.

    A network of that name that cudaspawner did not create is never touched: the hub
    stops with a message. One that an older cudaspawner created without isolation is
    recreated when no container is attached, else the hub stops with a message saying
    which containers to stop.
    """
    import docker.errors
    import docker.types

    try:
        net = client.networks.get(name)
    except docker.errors.NotFound:
        net = None
    if net is not None:
        if NETWORK_LABEL not in (net.attrs.get("Labels") or {}):
            raise NetworkProblem(
                f"The Docker network {name!r} exists but was not created by cudaspawner, so it "
                "is left alone. Set CUDASPAWNER_NETWORK to another name, or remove that "
                f"network (docker network rm {name}) if nothing needs it."
            )
        if not isolating(net.attrs):
            attached = sorted(
                c.get("Name", cid[:12]) for cid, c in (net.attrs.get("Containers") or {}).items()
            )
            if attached:
                raise NetworkProblem(
                    f"The Docker network {name!r} was made by an older cudaspawner and lets "
                    "containers reach each other. It is recreated with isolation once no "
                    f"container is attached; still attached: {', '.join(attached)}. Stop "
                    "those servers (docker stop <name>), then start the hub again."
                )
            drop_chain(bridge_name(net.attrs))
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
        try:
            net = client.networks.create(
                name,
                driver="bridge",
                ipam=ipam,
                options=NETWORK_OPTIONS,
                labels={NETWORK_LABEL: "1"},
            )
        except docker.errors.APIError as e:
            # Another hub (or test) made it between our look and our create: use theirs.
            if e.status_code != 409:
                raise
            net = client.networks.get(name)
        net.reload()
    return net.attrs["IPAM"]["Config"][0]["Gateway"]
