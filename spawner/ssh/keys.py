"""Users' SSH public keys: parsing with clear sentences, and a small store.

The store is one SQLite file in the hub's data directory (`ssh-keys.sqlite`, mode 0600),
shared by the keys page and the gateway, which run in the same service process. Every
login reads it afresh, so a key removed on the page stops working at the next attempt.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

MAX_KEYS_PER_USER = 20
MAX_RSA_BITS = 16384
MAX_KEY_LINE = 4096  # characters: a 16384-bit RSA key line is about 2,800
MAX_NAME = 60
# What a person can paste: one line of an OpenSSH .pub file. Weak kinds are refused.
_ALLOWED_TYPES = {
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
}
MIN_RSA_BITS = 2048


class KeyProblem(ValueError):
    """A key or name a user typed cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class ParsedKey:
    """A public key as stored: its OpenSSH line (without comment) and SHA256 fingerprint."""

    algorithm: str
    openssh: str
    fingerprint: str
    comment: str = ""


@dataclass(frozen=True)
class StoredKey:
    id: int
    user: str
    name: str
    algorithm: str
    openssh: str
    fingerprint: str
    added: float


def fingerprint(key: asyncssh.SSHKey) -> str:
    """SHA256:... as `ssh-keygen -l` and `ssh -v` print it."""
    return key.get_fingerprint("sha256")


def parse_public_key(text: str) -> ParsedKey:
    """The key in `text` (one OpenSSH public-key line), or KeyProblem with the reason."""
    line = (text or "").strip()
    if not line:
        raise KeyProblem("Paste a public key: one line like 'ssh-ed25519 AAAA... you@laptop'.")
    if "PRIVATE KEY" in line:
        raise KeyProblem(
            "That is a private key. Keep it secret; paste the public half instead "
            "(the file ending in .pub, e.g. ~/.ssh/id_ed25519.pub)."
        )
    if "\n" in line:
        raise KeyProblem("Paste one key at a time (one line of a .pub file).")
    if len(line) > MAX_KEY_LINE:
        raise KeyProblem(
            f"That line is {len(line)} characters long; a public key line is at most "
            f"{MAX_KEY_LINE} (an RSA key of {MAX_RSA_BITS} bits fits). Paste one line of a "
            ".pub file."
        )
    kind = line.split(None, 1)[0]
    if kind == "ssh-dss":
        raise KeyProblem("DSA keys are too weak; make an ed25519 key: ssh-keygen -t ed25519")
    if kind not in _ALLOWED_TYPES:
        raise KeyProblem(
            f"{kind[:40]!r} is not an SSH public key type this server accepts; paste one line "
            "of a .pub file, e.g. 'ssh-ed25519 AAAA... you@laptop'."
        )
    try:
        key = asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError, TypeError):
        raise KeyProblem(
            "That line is not a valid SSH public key (it may be cut short); copy the whole "
            "line of the .pub file."
        ) from None
    if key.algorithm.decode() == "ssh-rsa":
        bits = key.pyca_key.key_size if hasattr(key, "pyca_key") else MIN_RSA_BITS
        if bits > MAX_RSA_BITS:
            raise KeyProblem(
                f"This RSA key has {bits} bits; {MAX_RSA_BITS} at most, or an ed25519 key."
            )
        if bits < MIN_RSA_BITS:
            raise KeyProblem(
                f"This RSA key has {bits} bits; {MIN_RSA_BITS} at least, or an ed25519 key."
            )
    comment = key.get_comment() or ""
    key.set_comment(None)
    openssh = key.export_public_key("openssh").decode().strip()
    return ParsedKey(
        algorithm=key.algorithm.decode(),
        openssh=openssh,
        fingerprint=fingerprint(key),
        comment=comment,
    )


def clean_name(name: str, parsed: ParsedKey) -> str:
    """The name a key is listed under: the user's, else the key's comment, else its type."""
    name = " ".join((name or "").split()) or parsed.comment.strip() or parsed.algorithm
    if len(name) > MAX_NAME:
        raise KeyProblem(f"Give the key a shorter name ({MAX_NAME} characters at most).")
    return name


class KeyStore:
    """Keys per hub account, in one SQLite file (created 0600).

    Each key records the account it was added for (the hub's creation time of that account,
    as its API reports it), not only the name: the keys follow a renamed account, and a
    later account of a deleted one's name never matches them. Keys from before accounts
    were recorded (`account` empty) match by name.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            self.path.touch(mode=0o600)
        self.path.chmod(0o600)
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS ssh_keys (id INTEGER PRIMARY KEY, user TEXT NOT "
                "NULL, name TEXT NOT NULL, algorithm TEXT NOT NULL, openssh TEXT NOT NULL, "
                "fingerprint TEXT NOT NULL, added REAL NOT NULL, UNIQUE (user, fingerprint))"
            )
            columns = {row[1] for row in db.execute("PRAGMA table_info(ssh_keys)")}
            if "account" not in columns:  # a store made before accounts were recorded
                db.execute("ALTER TABLE ssh_keys ADD COLUMN account TEXT NOT NULL DEFAULT ''")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10, isolation_level=None)

    # An account's keys: those recorded for it, and unrecorded ones of its current name.
    _MINE = "((account != '' AND account = ?) OR (account = '' AND user = ?))"

    def keys(self, user: str, account: str = "") -> list[StoredKey]:
        with self._db() as db:
            rows = db.execute(
                "SELECT id, user, name, algorithm, openssh, fingerprint, added FROM ssh_keys "
                f"WHERE {self._MINE} ORDER BY added",
                (account, user),
            ).fetchall()
        return [StoredKey(*row) for row in rows]

    def add(self, user: str, text: str, name: str = "", account: str = "") -> StoredKey:
        parsed = parse_public_key(text)
        name = clean_name(name, parsed)
        existing = self.keys(user, account)
        for key in existing:
            if key.fingerprint == parsed.fingerprint:
                raise KeyProblem(f"This key is already on your list, as {key.name!r}.")
        if len(existing) >= MAX_KEYS_PER_USER:
            raise KeyProblem(
                f"You have {MAX_KEYS_PER_USER} keys; remove one before adding another."
            )
        added = time.time()
        with self._db() as db:
            # A row of an earlier account of this name (unreachable now) gives way.
            db.execute(
                "DELETE FROM ssh_keys WHERE user = ? AND fingerprint = ?",
                (user, parsed.fingerprint),
            )
            cur = db.execute(
                "INSERT INTO ssh_keys (user, name, algorithm, openssh, fingerprint, added, "
                "account) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user, name, parsed.algorithm, parsed.openssh, parsed.fingerprint, added, account),
            )
        return StoredKey(
            cur.lastrowid, user, name, parsed.algorithm, parsed.openssh, parsed.fingerprint, added
        )

    def remove(self, user: str, key_id: int, account: str = "") -> bool:
        """Remove one of the account's keys; False when it has no key with that id."""
        with self._db() as db:
            cur = db.execute(
                f"DELETE FROM ssh_keys WHERE id = ? AND {self._MINE}", (key_id, account, user)
            )
        return cur.rowcount > 0

    def forget(self, user: str, account: str = "") -> int:
        """Remove every key of a deleted account; how many there were."""
        with self._db() as db:
            return db.execute(f"DELETE FROM ssh_keys WHERE {self._MINE}", (account, user)).rowcount

    def find(self, user: str, key: asyncssh.SSHKey, account: str = "") -> StoredKey | None:
        """The stored key of the account that is `key`, or None."""
        wanted = fingerprint(key)
        for stored in self.keys(user, account):
            if stored.fingerprint == wanted:
                return stored
        return None


def ensure_host_key(path: Path) -> asyncssh.SSHKey:
    """The gateway's host key: generated once (ed25519), kept 0600, then always reused."""
    path = Path(path)
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="cudaspawner ssh gateway")
        tmp = path.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.chmod(0o600)
        tmp.write_bytes(key.export_private_key("openssh"))
        tmp.replace(path)
    path.chmod(0o600)
    return asyncssh.read_private_key(str(path))
