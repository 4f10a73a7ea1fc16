"""Homes of deleted accounts: `cudaspawner-admin homes` lists them and removes one on request.

A home volume carries the account it was made for (`hub_identity.ACCOUNT_LABEL`). When that
account is deleted the volume stays (its files may matter), and no later account of the same
name is given it. What happens to it is the admin's choice: keep it, or remove it. Only
volumes of this hub are listed or removed, and never one a container still uses.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from ..engine import hub_identity


@dataclass(frozen=True)
class Home:
    volume: str
    user: str  # the name it was made for
    account: str  # that account's stamp
    orphaned: bool  # no account of the hub has this stamp any more
    in_use_by: tuple[str, ...] = ()  # containers that mount it


def hub_accounts(db_path: str) -> set[str]:
    """The stamps of every account in the hub's database (read only)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT id, created FROM users").fetchall()
    finally:
        db.close()
    return {hub_identity.account_stamp(uid, _parse(created)) for uid, created in rows}


def _parse(value) -> datetime | None:
    if isinstance(value, datetime) or value is None:
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def homes(volumes: list[dict], accounts: set[str], hub_id: str, users_of: dict) -> list[Home]:
    """This hub's account-bound volumes (`docker volume ls` data), each judged (pure)."""
    found = []
    for v in volumes:
        labels = v.get("Labels") or {}
        account = hub_identity.account_of(labels)
        if not account or not hub_identity.is_ours(labels, hub_id):
            continue
        found.append(
            Home(
                volume=v["Name"],
                user=labels.get("org.cudaspawner.user", ""),
                account=account,
                orphaned=account not in accounts,
                in_use_by=tuple(users_of.get(v["Name"], ())),
            )
        )
    return sorted(found, key=lambda h: (not h.orphaned, h.user, h.volume))


def list_homes(client, db_path: str, hub_id: str) -> list[Home]:
    """This hub's homes on the engine, judged against the hub's accounts."""
    volumes = client.api.volumes(filters={"label": f"{hub_identity.HUB_LABEL}={hub_id}"})
    users_of: dict[str, list[str]] = {}
    for c in client.api.containers(all=True):
        for m in c.get("Mounts") or []:
            if m.get("Type") == "volume":
                users_of.setdefault(m.get("Name"), []).append(c["Names"][0].lstrip("/"))
    return homes(volumes.get("Volumes") or [], hub_accounts(db_path), hub_id, users_of)


def remove_home(client, db_path: str, hub_id: str, volume: str) -> str:
    """Remove one orphaned home of this hub; ValueError with a sentence for anything else."""
    for home in list_homes(client, db_path, hub_id):
        if home.volume != volume:
            continue
        if not home.orphaned:
            raise ValueError(f"{volume} belongs to the account {home.user}, which exists.")
        if home.in_use_by:
            raise ValueError(f"{volume} is mounted by {', '.join(home.in_use_by)}.")
        client.api.remove_volume(volume)
        return f"Removed {volume} (the home of a deleted account named {home.user})."
    raise ValueError(f"{volume} is not a home volume of this hub.")
