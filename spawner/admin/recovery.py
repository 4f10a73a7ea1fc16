"""Admin recovery: give the first admin (or any NativeAuthenticator account) a new password.

NativeAuthenticator keeps only a bcrypt hash of each password, in the hub database's
`users_info` table, so a lost password cannot be read back: this writes a new hash (and
marks the account approved), with the hub running or not. The new password is generated
and printed once, or read from standard input with --password-stdin (never from the
command line, where `ps` and shell history would keep it).

    cudaspawner-admin reset-password [USER] [--db PATH] [--password-stdin]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sqlite3
import sys
from collections.abc import Sequence

DATA_ENV = "CUDASPAWNER_DATA"
MIN_LENGTH = 10  # the default deployment's NativeAuthenticator.minimum_password_length


class RecoveryError(Exception):
    """The reset could not be done; the message says why and what to do."""


def hash_password(password: str) -> bytes:
    """A bcrypt hash as NativeAuthenticator writes and checks it."""
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt())


def reset_password(db_path: str, user: str, password: str) -> str:
    """Store `password` for `user`; returns what was done, in a sentence.

    An account that exists in the hub but has no NativeAuthenticator record (e.g. an admin
    listed in admin_users who never signed up) gets one.
    """
    if len(password) < MIN_LENGTH:
        raise RecoveryError(f"The new password must have at least {MIN_LENGTH} characters.")
    if not os.path.exists(db_path):
        raise RecoveryError(
            f"No hub database at {db_path}: give --db, or set {DATA_ENV} to the hub's data "
            "directory."
        )
    with sqlite3.connect(db_path, timeout=10) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if "users_info" not in tables:
            raise RecoveryError(
                f"{db_path} has no NativeAuthenticator accounts (no users_info table): this "
                "hub does not use NativeAuthenticator's passwords."
            )
        hashed = hash_password(password)
        updated = db.execute(
            "UPDATE users_info SET password = ?, is_authorized = 1 WHERE username = ?",
            (hashed, user),
        ).rowcount
        if updated:
            return f"New password stored for {user!r}."
        known = (
            "users" in tables
            and db.execute("SELECT 1 FROM users WHERE name = ?", (user,)).fetchone()
        )
        if not known:
            raise RecoveryError(
                f"No account {user!r} in {db_path}. The first admin is 'admin' unless "
                "CUDANativeAuthenticator.first_admin says otherwise."
            )
        db.execute(
            "INSERT INTO users_info (username, password, is_authorized, login_email_sent, "
            "has_2fa, otp_secret) VALUES (?, ?, 1, 0, 0, ?)",
            (user, hashed, base64.b32encode(os.urandom(10)).decode()),
        )
        return f"Password record created for {user!r}."


def main(argv: Sequence[str] | None = None, prog: str = "cudaspawner-admin") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        prog=prog,
        description="Recover access to the hub, and handle the homes of deleted accounts.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    reset = sub.add_parser(
        "reset-password",
        help="give an account (default: the first admin) a new password",
        description="Store a new password for a NativeAuthenticator account in the hub's "
        "database. Without --password-stdin a password is generated and printed once.",
    )
    reset.add_argument("user", nargs="?", default="admin", help="account name (default: admin)")
    default_db = os.path.join(os.environ.get(DATA_ENV, "/var/lib/cudaspawner"), "jupyterhub.sqlite")
    reset.add_argument("--db", default=default_db, help=f"hub database (default: {default_db})")
    reset.add_argument(
        "--password-stdin", action="store_true", help="read the new password from stdin"
    )
    homes = sub.add_parser(
        "homes",
        help="list the home volumes of deleted accounts, or remove one",
        description="Home volumes are bound to the account they were made for; a deleted "
        "account's home stays until you decide. Lists this hub's homes (orphaned first).",
    )
    homes.add_argument("--db", default=default_db, help=f"hub database (default: {default_db})")
    homes.add_argument("--hub-id", default="", help="this hub's id (default: its hub-id file)")
    homes.add_argument("--remove", metavar="VOLUME", help="remove this orphaned home volume")
    args = p.parse_args(argv)
    if args.command == "homes":
        return _homes(args, prog)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = secrets.token_urlsafe(18)
    try:
        done = reset_password(args.db, args.user, password)
    except (RecoveryError, sqlite3.Error) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    print(done)
    if not args.password_stdin:
        print(f"New password for {args.user}: {password}")
        print("Log in and change it at /hub/change-password. It is not shown again.")
    return 0


def _homes(args, prog: str) -> int:
    import docker

    from ..engine.hub_identity import hub_identity
    from .orphan_homes import list_homes, remove_home

    hub_id = args.hub_id or hub_identity(os.path.dirname(os.path.abspath(args.db)))
    try:
        client = docker.from_env(timeout=30)
        if args.remove:
            print(remove_home(client, args.db, hub_id, args.remove))
            return 0
        found = list_homes(client, args.db, hub_id)
    except (ValueError, sqlite3.Error, docker.errors.DockerException) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    if not found:
        print("No home volumes bound to accounts on this hub.")
    for h in found:
        state = "ORPHANED (account deleted)" if h.orphaned else "in use by its account"
        mounted = f", mounted by {', '.join(h.in_use_by)}" if h.in_use_by else ""
        print(f"{h.volume}\t{h.user}\t{state}{mounted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
