"""First-start set-up as data: the public certificate and the site's default limits
(spawner.deployment), without Docker."""

from __future__ import annotations

import datetime
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spawner.environment import default_limits, parse_cpu_limit, parse_mem_limit
from spawner.host.deployment import ensure_self_signed_cert, split_names


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_names_and_addresses_are_told_apart_and_deduplicated():
    assert split_names(["localhost", "Hub.Example.org", "10.0.0.5", "", "localhost", "[::1]"]) == (
        ["localhost", "hub.example.org"],
        ["10.0.0.5", "::1"],
    )


def test_the_certificate_is_an_end_entity_for_servers_with_exactly_the_given_names(tmp_path):
    cert_path, key_path, created = ensure_self_signed_cert(
        tmp_path, ["localhost", "hub.example.org"], ["127.0.0.1", "10.1.2.3"]
    )
    assert created and stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = load(cert_path)
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.crl_sign
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "hub.example.org"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "10.1.2.3"]


def test_a_fitting_certificate_is_kept_and_a_change_of_names_makes_a_new_one(tmp_path):
    first = ensure_self_signed_cert(tmp_path, ["localhost"], ["127.0.0.1"])[0].read_bytes()
    assert ensure_self_signed_cert(tmp_path, ["localhost"], ["127.0.0.1"])[2] is False
    assert (tmp_path / "hub-cert.pem").read_bytes() == first
    _, _, created = ensure_self_signed_cert(tmp_path, ["localhost", "gpu.example.org"], [])
    assert created and (tmp_path / "hub-cert.pem").read_bytes() != first


def make_cert(tmp_path, *, ca: bool, issuer: str = "localhost") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "hub-cert.pem").write_bytes(pem)
    (tmp_path / "hub-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem


def test_the_ca_certificate_an_older_version_made_is_replaced(tmp_path):
    old = make_cert(tmp_path, ca=True)
    _, _, created = ensure_self_signed_cert(tmp_path, ["localhost"], [])
    assert created and (tmp_path / "hub-cert.pem").read_bytes() != old
    assert (
        load(tmp_path / "hub-cert.pem")
        .extensions.get_extension_for_class(x509.BasicConstraints)
        .value.ca
        is False
    )


def test_a_certificate_signed_by_someone_else_is_the_admins_and_stays(tmp_path):
    theirs = make_cert(tmp_path, ca=False, issuer="Example CA")
    assert ensure_self_signed_cert(tmp_path, ["other.example.org"], [])[2] is False
    assert (tmp_path / "hub-cert.pem").read_bytes() == theirs


@pytest.mark.parametrize(
    ("mem", "cpus", "expected"),
    [
        (2 * 1024**3, 2, ("1G", 1.0)),
        (24 * 1024**3, 2, ("12G", 1.0)),
        (512 * 1024**3, 64, ("256G", 32.0)),
        (1024**3, 1, ("1G", 1.0)),
    ],
)
def test_default_limits_are_half_the_host(mem, cpus, expected):
    assert default_limits(mem, cpus) == expected


def test_limits_from_the_environment_are_checked_with_a_sentence():
    assert parse_mem_limit("8g") == "8G" and parse_mem_limit("512M") == "512M"
    assert parse_mem_limit("none") is None and parse_cpu_limit("none", 4) is None
    assert parse_cpu_limit("0.5", 2) == 0.5
    with pytest.raises(ValueError, match="is not a memory size"):
        parse_mem_limit("lots")
    with pytest.raises(ValueError, match="at most this host's 2"):
        parse_cpu_limit("4", 2)
    with pytest.raises(ValueError, match="must be a number of CPUs"):
        parse_cpu_limit("two", 2)
