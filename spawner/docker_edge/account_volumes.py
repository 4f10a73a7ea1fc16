"""A user's volumes, bound to their account: made with this hub's and the account's labels,
found again under an earlier name after the hub renamed the user, and what goes with the
account when it is deleted (its SSH keys; the home stays for the admin).

A mixin of the Docker spawner: it uses DockerSpawner's `docker(...)`, `format_volume_name`,
`user`, `log` and the site's `hub_id` and `ssh_key_store`. What is decided (whose a volume
is, which one an account keeps) is `owned_objects` and `ownership`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from ..engine import foreign_objects, hub_identity


class AccountVolumes:
    """The account side of a Docker spawner's volumes."""

    # mount source -> the volume a renamed account keeps (each start sets its own)
    _volume_names: Mapping[str, str] = MappingProxyType({})

    @property
    def _account(self) -> str:
        return hub_identity.account_stamp(self.user.id, self.user.created)

    async def _ensure_volume(
        self, name: str, replace_earlier: bool = False, mount: str = ""
    ) -> None:
        await foreign_objects.ensure_volume(
            self.docker,
            name,
            self.hub_id,
            self.user.name,
            self.log,
            self._account,
            replace_earlier,
            mount,
        )

    async def delete_forever(self) -> None:
        """The account is deleted: its SSH keys go with it, so a later account of the same
        name never logs in with them. Its home volume stays, bound to this account, for the
        admin to keep or remove (`cudaspawner-admin homes`); no later account gets it."""
        if self.ssh_key_store:
            from jupyterhub.utils import isoformat

            from ..ssh.keys import KeyStore

            # The account as the hub's API names it (what the key store records).
            account = isoformat(self.user.created) if self.user.created else ""
            # SQLite may wait on the gateway's lock: off the event loop.
            removed = await asyncio.to_thread(
                lambda: KeyStore(Path(self.ssh_key_store)).forget(self.user.name, account)
            )
            self.log.info("Deleted account %s: %d SSH key(s) removed", self.user.name, removed)

    async def _ensure_volumes(self, mounts: Mapping) -> None:
        """The start's named volumes (not bind mounts), made with this hub's label. One made
        for this account under the name it had before the hub renamed it is used again."""
        self._volume_names = {}
        for source, target in mounts.items():
            name = self._volume_name(source)
            if not name or name.startswith(("/", ".", "~")):
                continue
            mount = target if isinstance(target, str) else str(target.get("bind", ""))
            kept = await foreign_objects.account_volume(
                self.docker, self.hub_id, self._account, mount, name
            )
            if kept != name:
                self.log.info(
                    "%s keeps home volume %s (made under an earlier name)", self.user.name, kept
                )
                self._volume_names[source] = kept
            await self._ensure_volume(kept, mount=mount)

    def _volume_name(self, source: str) -> str:
        try:
            return self.format_volume_name(source, self)
        except Exception:  # an admin's template we cannot fill: DockerSpawner reports it
            return ""

    def account_mounts(self, mounts: Mapping) -> dict:
        """The plan's mounts with a renamed account's volumes under the names they were made
        with (literal names: format_volume_name leaves them as they are)."""
        return {self._volume_names.get(s, s): t for s, t in mounts.items()}
