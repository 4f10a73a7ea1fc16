"""One SSH connection to the gateway: who logs in with which key, and what may be opened.

asyncssh calls these per connection; the sessions themselves are the `Gateway`'s.
Public keys only (read afresh from the key store on every attempt), and forwarding only to
loopback ports, which the gateway then reaches inside the user's own container.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncssh
from asyncssh.constants import EXTENDED_DATA_STDERR

from .keys import KeyStore, StoredKey, fingerprint

log = logging.getLogger("cudaspawner.ssh")

# Names that mean "this container itself" in `ssh -L local:HOST:port`.
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}


@dataclass
class Login:
    """One SSH connection: who, with which key, from where."""

    peer: str
    user: str = ""
    key: StoredKey | None = None
    started: float = field(default_factory=time.time)
    refused: list[str] = field(default_factory=list)  # "user fingerprint" tried and refused
    activity_task: asyncio.Task | None = None


class GatewaySide(Protocol):
    """What a connection uses of the gateway that makes it (`gateway.Gateway`), which hands
    itself to each connection: named here so that this module does not import that one."""

    store: KeyStore
    settings: Any  # gateway.GatewaySettings
    logins: dict[asyncssh.SSHServerConnection, Login]
    unauthenticated: Counter[str]

    def record(self, event: str, login: Login, **fields: Any) -> None: ...

    async def keep_active(self, login: Login) -> None: ...

    async def account_of(self, user: str) -> str | None: ...

    async def session(self, process: asyncssh.SSHServerProcess) -> None: ...

    async def forward(
        self, login: Login, port: int, reader: asyncssh.SSHReader, writer: asyncssh.SSHWriter
    ) -> None: ...


class ContainerSession(asyncssh.SSHServerProcess):
    """A session whose `sftp` subsystem runs in the container, not in asyncssh.

    asyncssh serves `sftp` itself (on the gateway's own files) or refuses it; here it is
    handed to the gateway like a shell or a command, which runs the container's
    sftp-server as the user. This leans on asyncssh's session internals (2.14 .. 2.x).
    """

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp"

    def session_started(self) -> None:
        chan = self._chan
        stdin = asyncssh.SSHReader(self, chan)
        stdout = asyncssh.SSHWriter(self, chan)
        stderr = asyncssh.SSHWriter(self, chan, EXTENDED_DATA_STDERR)
        handler = self._session_factory(stdin, stdout, stderr)
        if inspect.isawaitable(handler):
            self._conn.create_task(handler, stdin.logger)


class SSHConnection(asyncssh.SSHServer):
    """Per connection: authentication and what may be forwarded."""

    def __init__(self, gateway: GatewaySide) -> None:
        self.gateway = gateway
        self.login: Login | None = None
        self.conn: asyncssh.SSHServerConnection | None = None
        self.accepted: dict[str, StoredKey] = {}
        self.source = ""  # counted as waiting to log in, until it does or goes

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername") or ("?", 0)
        self.login = Login(peer=f"{peer[0]}:{peer[1]}")
        self.gateway.logins[conn] = self.login
        # Connections from one address that have not logged in yet: a few at a time.
        self.source = str(peer[0])
        waiting = self.gateway.unauthenticated
        if waiting[self.source] >= self.gateway.settings.max_unauthenticated_per_source:
            log.warning("ssh %s", json.dumps({"event": "too_many_unauthenticated",
                                              "source": self.source}))  # fmt: skip
            self.source = ""
            conn.close()
            return
        waiting[self.source] += 1

    def _authenticated_or_gone(self) -> None:
        if self.source:
            self.gateway.unauthenticated[self.source] -= 1
            if self.gateway.unauthenticated[self.source] <= 0:
                del self.gateway.unauthenticated[self.source]
            self.source = ""

    def connection_lost(self, exc: Exception | None) -> None:
        self._authenticated_or_gone()
        if self.conn is not None:
            self.gateway.logins.pop(self.conn, None)
        login = self.login
        if login and login.activity_task:
            login.activity_task.cancel()
        if login and login.key:
            self.gateway.record("logout", login, started=login.started, ended=time.time())
        elif login and login.refused:
            # Who tried which keys from where: an admin looking for an attack finds it here.
            self.gateway.record("refused", login, tried=login.refused[-5:], ended=time.time())

    def begin_auth(self, username: str) -> bool:
        return True  # always authenticate; never say whether a user exists

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # Read afresh on every attempt: a key removed on the page is refused at once. Keys
        # match the account now behind the name (never a deleted one's of the same name).
        account = await self.gateway.account_of(username)
        stored = None
        if account:  # "" (no such user) and None (the hub unreachable) log nobody in
            stored = self.gateway.store.find(username, key, account)
        if stored is not None:
            # asyncssh asks again for the key that is then signed with, so the last key
            # accepted for a name is the one that logged in.
            self.accepted[username] = stored
        elif self.login is not None:
            self.login.refused.append(f"{username} {fingerprint(key)}")
        return stored is not None

    def auth_completed(self) -> None:
        self._authenticated_or_gone()
        login, conn = self.login, self.conn
        if login is None or conn is None:
            return
        login.user = conn.get_extra_info("username")
        login.key = self.accepted.get(login.user)
        if login.key is None:  # cannot happen with public keys only; never run unattributed
            conn.close()
            return
        self.gateway.record("login", login, started=login.started)
        login.activity_task = asyncio.ensure_future(self.gateway.keep_active(login))

    def session_requested(self) -> asyncssh.SSHServerSession:
        return ContainerSession(self.gateway.session, None, 0, False)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int):
        if dest_host.strip("[]").lower() not in LOOPBACK_NAMES or not 0 < dest_port < 65536:
            # The destination is the user's text: one escaped JSON field, never raw.
            fields = {"event": "forward_refused", "user": self.login and self.login.user,
                      "to_host": dest_host, "to_port": dest_port}  # fmt: skip
            log.warning("ssh %s", json.dumps(fields))
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                "Only ports inside your own server can be forwarded: use localhost:PORT.",
            )
        login = self.login
        assert login is not None

        async def handler(reader: asyncssh.SSHReader, writer: asyncssh.SSHWriter) -> None:
            await self.gateway.forward(login, dest_port, reader, writer)

        return handler

    def server_requested(self, listen_host: str, listen_port: int):
        return False  # remote forwarding would open a port on the gateway host

    def unix_connection_requested(self, dest_path: str):
        return False

    def unix_server_requested(self, listen_path: str):
        return False
