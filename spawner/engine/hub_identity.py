"""Which hub a container or volume belongs to: one Docker engine, several owners.

A Docker engine may serve a production hub, a staging hub, the test suite and an admin's
own `docker run` jobs at once. Every object a hub creates carries its identity label
(`org.cudaspawner.hub`), a stable id generated once per deployment and kept in its data
directory. A hub stops, removes or reuses only objects carrying its own id. Pure, apart
from `hub_identity`, which reads (or writes once) the id file.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

HUB_LABEL = "org.cudaspawner.hub"
# The account a home volume was made for: the hub's user id and that account's creation
# time. A later account of the same name (the first one deleted) has another stamp, so it is
# never handed the earlier one's files (ids alone can be reused by SQLite).
ACCOUNT_LABEL = "org.cudaspawner.account"
# Where in the container a volume is mounted (its place in the profile's mounts): with the
# account, it finds a user's home again after the hub renamed them.
MOUNT_LABEL = "org.cudaspawner.mount"
HUB_ID_FILE = "hub-id"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def valid_hub_id(value: str) -> bool:
    """A label-safe id: letters, digits, '.', '_', '-', at most 63 characters."""
    return bool(_HUB_ID.match(value))


def hub_identity(directory: str | os.PathLike) -> str:
    """This deployment's id, kept in `directory/hub-id`, generated there on first use.

    Created atomically, so two hub processes starting at once on the same data directory
    agree on one id.
    """
    path = Path(directory) / HUB_ID_FILE
    if not path.exists():
        # Written aside, then linked into place: link fails if the file exists, and a
        # reader never sees a half-written id.
        spare = path.with_name(f".{HUB_ID_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        spare.write_text("hub-" + secrets.token_hex(8) + "\n")
        try:
            os.link(spare, path)
        except FileExistsError:
            pass
        finally:
            spare.unlink()
    text = path.read_text().strip()
    if not valid_hub_id(text):
        raise ValueError(
            f"{path} does not hold a hub id (letters, digits, '.', '_', '-'): "
            "delete it to generate a new one, but only if no server of this hub runs."
        )
    return text


def account_stamp(user_id: int, created: datetime | None) -> str:
    """The label value binding a volume to one account (not only to its name)."""
    when = created.strftime("%Y%m%dT%H%M%S.%f") if created else "unknown"
    return f"{user_id}@{when}"


def account_volume(volumes: list[dict], wanted: str) -> str | None:
    """Of the volumes made for one account at one mount point (`docker volume ls`, already
    filtered by hub, account and mount), the one to use: `wanted` (today's name) if it is
    among them, else the oldest (made under the name the account had then)."""
    names = {v["Name"] for v in volumes}
    if wanted in names:
        return wanted
    ordered = sorted(volumes, key=lambda v: (v.get("CreatedAt") or "", v["Name"]))
    return ordered[0]["Name"] if ordered else None


def account_of(labels: Mapping[str, str] | None) -> str:
    """The account stamp on a volume; "" for one made before accounts were recorded."""
    return ((labels or {}).get(ACCOUNT_LABEL) or "").strip()


def earlier_accounts_home(
    name: str, user: str, labels: Mapping[str, str] | None
) -> tuple[str, str]:
    """(for the user, for the admin's log) when `user`'s home volume was made for an earlier
    account of the same name."""
    for_user = (
        f"A home volume ({name}) from an earlier account named {user} is still on this host. "
        "It is not yours, so your server does not use it; an administrator decides what "
        "happens to it. Please tell your administrator."
    )
    for_admin = (
        f"Not giving volume {name} to the account {user}: it was made for an earlier account "
        f"of that name ({account_of(labels)}). List and handle such homes with "
        "`cudaspawner-admin homes` (keep, or --remove)."
    )
    return for_user, for_admin


def data_directory(db_url: str, fallback: str | os.PathLike) -> Path:
    """Where the hub keeps its data: the directory of its SQLite database, else `fallback`."""
    prefix = "sqlite:///"
    if db_url.startswith(prefix) and db_url[len(prefix) :] not in ("", ":memory:"):
        return Path(db_url[len(prefix) :]).expanduser().resolve().parent
    return Path(fallback)


def owner_of(labels: Mapping[str, str] | None) -> str:
    """The hub id an object's labels name; "" for an object no cudaspawner hub made."""
    return ((labels or {}).get(HUB_LABEL) or "").strip()


def is_ours(labels: Mapping[str, str] | None, hub_id: str) -> bool:
    return bool(hub_id) and owner_of(labels) == hub_id


def describe_owner(labels: Mapping[str, str] | None) -> str:
    owner = owner_of(labels)
    return f"another JupyterHub (hub id {owner})" if owner else "someone else (not a hub)"


def foreign_container(name: str, labels: Mapping[str, str] | None) -> tuple[str, str]:
    """(for the user, for the admin's log) when a container of `name` is not this hub's."""
    user = (
        f"A container named {name} already exists on this host and does not belong to this "
        "hub, so your server cannot start under that name. It was left untouched. "
        "Please tell your administrator."
    )
    admin = (
        f"Refusing to touch container {name}: it belongs to {describe_owner(labels)}, "
        f"not to this hub. Remove or rename it (docker rm -f {name}) if nothing needs it, "
        "or give this hub another DockerSpawner.prefix / name_template."
    )
    return user, admin


def foreign_volume(name: str, labels: Mapping[str, str] | None) -> tuple[str, str]:
    """(for the user, for the admin's log) when a volume of `name` is another hub's."""
    user = (
        f"The storage volume {name} on this host belongs to another hub, so your server "
        "cannot use it. It was left untouched. Please tell your administrator."
    )
    admin = (
        f"Refusing to use volume {name}: it belongs to {describe_owner(labels)}, not to this "
        "hub. Give this hub another CUDADockerSpawner.home_volume_name, or remove the volume "
        f"(docker volume rm {name}) if its owner no longer needs it."
    )
    return user, admin
