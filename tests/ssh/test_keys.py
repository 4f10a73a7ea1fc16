"""The key store and key parsing: pure logic and a SQLite file, no hub."""

from __future__ import annotations

import asyncssh
import pytest

from spawner.ssh.keys import KeyProblem, KeyStore, ensure_host_key, parse_public_key


def _key(kind: str = "ssh-ed25519", comment: str = "me@laptop", **kw) -> asyncssh.SSHKey:
    return asyncssh.generate_private_key(kind, comment=comment, **kw)


def _line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key("openssh").decode().strip()


def test_a_pub_line_gives_the_fingerprint_ssh_keygen_prints():
    key = _key()
    parsed = parse_public_key("  " + _line(key) + "\n")
    assert parsed.fingerprint == key.get_fingerprint("sha256")
    assert parsed.fingerprint.startswith("SHA256:")
    assert parsed.comment == "me@laptop" and parsed.algorithm == "ssh-ed25519"
    assert "me@laptop" not in parsed.openssh


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("", "Paste a public key"),
        ("hello world", "not an SSH public key type"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB", "not a valid SSH public key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n", "That is a private key"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "DSA keys are too weak"),
    ],
)
def test_bad_input_is_a_sentence_saying_what_to_paste(text, sentence):
    with pytest.raises(KeyProblem, match=sentence):
        parse_public_key(text)


def test_a_short_rsa_key_is_refused_with_the_reason():
    weak = _key("ssh-rsa", key_size=1024)
    with pytest.raises(KeyProblem, match="1024 bits"):
        parse_public_key(_line(weak))
    assert parse_public_key(_line(_key("ssh-rsa", key_size=2048))).algorithm == "ssh-rsa"


def test_store_keeps_keys_per_user_and_removal_is_immediate(tmp_path):
    store = KeyStore(tmp_path / "keys.sqlite")
    alice, bob = _key(), _key()
    added = store.add("alice", _line(alice), "laptop")
    assert store.find("alice", alice.convert_to_public()) == added
    # Another user's key does not open alice's account, nor alice's key bob's.
    assert store.find("alice", bob) is None
    assert store.find("bob", alice) is None
    # A second reader (the gateway in another process) sees the same file.
    assert KeyStore(tmp_path / "keys.sqlite").find("alice", alice) == added
    # bob cannot remove alice's key by its number.
    assert not store.remove("bob", added.id)
    assert store.remove("alice", added.id)
    assert store.find("alice", alice) is None
    assert (tmp_path / "keys.sqlite").stat().st_mode & 0o777 == 0o600


def test_the_same_key_twice_and_names_are_explained(tmp_path):
    store = KeyStore(tmp_path / "keys.sqlite")
    key = _key(comment="work@desk")
    first = store.add("alice", _line(key), "")
    assert first.name == "work@desk"  # the key's comment when no name is given
    with pytest.raises(KeyProblem, match="already on your list, as 'work@desk'"):
        store.add("alice", _line(key), "again")
    with pytest.raises(KeyProblem, match="shorter name"):
        store.add("alice", _line(_key()), "x" * 61)


def test_host_key_is_made_once_0600_and_reused(tmp_path):
    path = tmp_path / "ssh_host_ed25519_key"
    first = ensure_host_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)  # an admin's slip is put right on the next start
    again = ensure_host_key(path)
    assert again.get_fingerprint() == first.get_fingerprint()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_key_line_too_long_or_an_rsa_modulus_too_big_is_refused_with_a_sentence():
    import base64
    import struct

    from spawner.ssh.keys import MAX_KEY_LINE, MAX_RSA_BITS

    def rsa_line(bits: int) -> str:
        def mpint(n: int) -> bytes:
            raw = n.to_bytes((n.bit_length() + 8) // 8, "big")
            return struct.pack(">I", len(raw)) + raw

        blob = struct.pack(">I", 7) + b"ssh-rsa" + mpint(65537) + mpint((1 << (bits - 1)) | 1)
        return "ssh-rsa " + base64.b64encode(blob).decode()

    with pytest.raises(KeyProblem, match=f"at most {MAX_KEY_LINE}"):
        parse_public_key(rsa_line(1_600_000))  # the 266 KB key of the report
    with pytest.raises(KeyProblem, match=f"{MAX_RSA_BITS} at most"):
        parse_public_key(rsa_line(MAX_RSA_BITS + 1024))


def test_keys_follow_their_account_and_never_match_a_later_account_of_the_same_name(tmp_path):
    store = KeyStore(tmp_path / "keys.sqlite")
    key = asyncssh.generate_private_key("ssh-ed25519")
    line = key.export_public_key("openssh").decode()
    store.add("alice", line, "laptop", account="2026-12-04T07:00:00.000001Z")
    # Renamed to alicia: the same account, so the same keys.
    assert store.find("alicia", key, "2026-12-04T07:00:00.000001Z") is not None
    # A new account that took the name alice: none of them.
    assert store.find("alice", key, "2026-12-05T09:00:00.000002Z") is None
    assert store.keys("alice", "2026-12-05T09:00:00.000002Z") == []
    # A key stored before accounts were recorded matches its name, for any account of it.
    legacy = asyncssh.generate_private_key("ssh-ed25519")
    store.add("bob", legacy.export_public_key("openssh").decode())
    assert store.find("bob", legacy, "2026-12-04T08:00:00.000003Z") is not None
    # Deleting an account forgets its keys, whatever name they were added under.
    assert store.forget("alicia", "2026-12-04T07:00:00.000001Z") == 1


def test_a_store_made_before_accounts_were_recorded_gains_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE ssh_keys (id INTEGER PRIMARY KEY, user TEXT NOT NULL, name TEXT NOT "
        "NULL, algorithm TEXT NOT NULL, openssh TEXT NOT NULL, fingerprint TEXT NOT NULL, "
        "added REAL NOT NULL, UNIQUE (user, fingerprint))"
    )
    db.commit()
    db.close()
    key = asyncssh.generate_private_key("ssh-ed25519")
    store = KeyStore(path)
    store.add("carol", key.export_public_key("openssh").decode(), account="x")
    assert store.find("carol", key, "x") is not None
