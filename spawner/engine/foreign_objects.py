"""This hub's containers, services and volumes on a shared engine: checked before use.

The I/O half of `ownership` (which decides from labels alone): one inspect of the object by
name, and a sentence for the user when it is another owner's. Nothing here removes,
stops or changes an object that is not this hub's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from docker.errors import NotFound
from tornado.web import HTTPError

from . import failures, hub_identity

# DockerSpawner's off-loop call: docker(method name, *args, **kwargs).
DockerCall = Callable[..., Awaitable]


def _labels(obj: dict) -> dict | None:
    # A container keeps its labels in Config, a Swarm service in Spec.
    return (obj.get("Config") or obj.get("Spec") or {}).get("Labels")


async def foreign_refusal(
    docker: DockerCall, inspect: str, name: str, hub_id: str, log: logging.Logger
) -> HTTPError | None:
    """A 409 for the user when a container (or service: `inspect`) of `name` exists and is
    not this hub's; None when there is none or it is ours. The admin's sentence is logged."""
    try:
        obj = await docker(inspect, name)
    except NotFound:
        return None
    labels = _labels(obj)
    if hub_identity.is_ours(labels, hub_id):
        return None
    for_user, for_admin = hub_identity.foreign_container(name, labels)
    log.error("%s", for_admin)
    return failures.user_error(409, for_user)


async def ensure_volume(
    docker: DockerCall,
    name: str,
    hub_id: str,
    user: str,
    log: logging.Logger,
    account: str = "",
    replace_earlier: bool = False,
    mount: str = "",
) -> None:
    """Create a named volume with this hub's label (and the account's), or check that an
    existing one is ours and this account's.

    A volume labelled by another hub is refused (409), and so is one made for an earlier
    account of the same name (409: the admin decides, `cudaspawner-admin homes`). One
    without any hub label predates ownership labels (or was made by hand) and is used as
    it is: it is how an upgraded deployment keeps its users' homes. `replace_earlier`: an
    earlier account's volume of ours that holds only what the hub writes at each start (the
    TLS certificates) is removed and made afresh instead. `mount`: where the container
    mounts it, recorded so that the account finds it again under another name.
    """
    made = {hub_identity.HUB_LABEL: hub_id, "org.cudaspawner.user": user}
    if account:
        made[hub_identity.ACCOUNT_LABEL] = account
    if mount:
        made[hub_identity.MOUNT_LABEL] = mount
    try:
        vol = await docker("inspect_volume", name)
    except NotFound:
        await docker("create_volume", name, labels=made)
        return
    labels = vol.get("Labels") or {}
    if hub_identity.owner_of(labels) and not hub_identity.is_ours(labels, hub_id):
        for_user, for_admin = hub_identity.foreign_volume(name, labels)
        log.error("%s", for_admin)
        raise failures.user_error(409, for_user)
    earlier = hub_identity.account_of(labels)
    if account and earlier and earlier != account and replace_earlier:
        log.info("Replacing volume %s of an earlier account %s", name, earlier)
        await docker("remove_volume", name)
        await docker("create_volume", name, labels=made)
        return
    if account and earlier and earlier != account:
        for_user, for_admin = hub_identity.earlier_accounts_home(name, user, labels)
        log.error("%s", for_admin)
        raise failures.user_error(409, for_user)


async def account_volume(
    docker: DockerCall, hub_id: str, account: str, mount: str, wanted: str
) -> str:
    """The name of the volume this hub made for `account` at `mount`, under whatever name the
    account had then (a user renamed through the hub API keeps their home); `wanted` when
    there is none yet."""
    if not (hub_id and account and mount):
        return wanted
    found = await docker(
        "volumes",
        filters={
            "label": [
                f"{hub_identity.HUB_LABEL}={hub_id}",
                f"{hub_identity.ACCOUNT_LABEL}={account}",
                f"{hub_identity.MOUNT_LABEL}={mount}",
            ]
        },
    )
    return hub_identity.account_volume((found or {}).get("Volumes") or [], wanted) or wanted
