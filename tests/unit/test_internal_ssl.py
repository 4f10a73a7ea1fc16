"""Internal TLS helpers: address planning and the certificate archive."""

from __future__ import annotations

import tarfile

import pytest

from spawner.host.internal_ssl import NoFreeAddress, cert_archive, numeric_ids, pick_free_address


def test_address_skips_gateway_and_addresses_in_use():
    used = ["172.30.0.2/16", "172.30.0.3"]
    assert pick_free_address("172.30.0.0/16", "172.30.0.1", used) == "172.30.0.4"


def test_full_network_is_a_clear_error():
    with pytest.raises(NoFreeAddress, match="no free address"):
        pick_free_address("10.9.0.0/30", "10.9.0.1", ["10.9.0.2"])


def test_private_key_is_readable_by_the_container_user_only(tmp_path):
    paths = {}
    for key, name in [("keyfile", "user.key"), ("certfile", "user.crt"), ("cafile", "ca.crt")]:
        (tmp_path / name).write_text(key)
        paths[key] = str(tmp_path / name)
    buf, where = cert_archive(paths, uid=1000, gid=100)
    assert where["keyfile"] == "/certs/user.key"
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["user.key"].mode == 0o600
    assert (members["user.key"].uid, members["user.key"].gid) == (1000, 100)
    assert members["user.crt"].mode == 0o644


@pytest.mark.parametrize(
    ("user", "ids"), [("1000:100", (1000, 100)), ("1000", (1000, 1000)), ("jovyan", None)]
)
def test_numeric_ids(user, ids):
    assert numeric_ids(user) == ids
