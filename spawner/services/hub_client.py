"""The service's HTTP edge: the hub's REST API with the service's own token (`hub_api`), and
each GPU server's API (`api/gpu/v1/...`) through the proxy with a token of that server's owner.

A user controls their own server, and anything sent to it is theirs. So the service's own
token (list users, stop servers, mint tokens) never leaves this host: each server is asked
with a token the service has the hub mint for the server's owner, scoped to that one
server (`access:servers!server=alice/`), which is worth nothing beyond what its owner
already holds. Answers are read with a size limit and handed on as untrusted data
(`server_figures` checks them). Nothing here runs inside a container, and nothing decides.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.netutil import DefaultLoopResolver, Resolver

from .hub_api import HubApi, HubApiError
from .server_figures import MAX_STATUS_BYTES, strict_json

TIMEOUT = 10.0  # seconds: one slow server must not hold up a look at the fleet for long
STOP_TIMEOUT = 60.0
TOKEN_LIFETIME = 3600  # seconds a per-server token lives; minted again before it ends
TOKEN_RENEW_BEFORE = 600.0
TOKEN_NOTE = "gpu-admin: reads this server's GPU figures and shows idle-GPU warnings"


class ServerRef(Protocol):
    """What the client needs of a server: its owner, its name and its URL."""

    user: str
    name: str
    url: str


@dataclass(frozen=True)
class ServerToken:
    token: str
    token_id: str
    expires_at: float


def server_scope(user: str, server_name: str) -> str:
    """The one scope a per-server token holds: access to that server, nothing else."""
    return f"access:servers!server={user}/{server_name}"


class ProxyResolver(Resolver):
    """Resolves the hub's public names (the hub's and every `*.<domain>` server name) to
    the proxy's own address, so the service reaches servers on their own host names
    without wildcard DNS on this host; any other name resolves as usual."""

    def initialize(self, domain: str, proxy_host: str) -> None:  # tornado's Configurable
        self.domain = domain.lower()
        self.proxy_host = proxy_host
        self._default = DefaultLoopResolver()

    def owns(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return bool(self.domain) and (host == self.domain or host.endswith("." + self.domain))

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        target = self.proxy_host if self.owns(host) else host
        return await self._default.resolve(target, port, family)


class HubClient(HubApi):
    """The hub's API (`HubApi`) and, through the proxy, each GPU server's API."""

    def __init__(
        self,
        api_url: str,
        token: str,
        proxy_url: str,
        *,
        proxy_ca: str | None = None,
        hub_ssl: ssl.SSLContext | None = None,
        public_domain: str = "",
        clock=time.time,
    ) -> None:
        super().__init__(api_url, token, ssl_context=hub_ssl, timeout=TIMEOUT)
        self.proxy_url = proxy_url.rstrip("/")
        self._proxy_ssl: ssl.SSLContext | None = None
        if self.proxy_url.startswith("https"):
            self._proxy_ssl = ssl.create_default_context(cafile=proxy_ca)
        # Servers' answers: bounded (a hostile server may send gigabytes), public names
        # resolved to the proxy.
        proxy_host = urlsplit(self.proxy_url).hostname or "127.0.0.1"
        self._servers_http = AsyncHTTPClient(
            force_instance=True,
            max_clients=16,
            max_body_size=MAX_STATUS_BYTES,
            max_buffer_size=MAX_STATUS_BYTES,
            resolver=ProxyResolver(public_domain, proxy_host),
        )
        self._tokens: dict[tuple[str, str], ServerToken] = {}
        self._clock = clock

    async def stop_server(
        self, user: str, server_name: str = "", timeout: float = STOP_TIMEOUT
    ) -> None:
        await super().stop_server(user, server_name, timeout)

    async def server_token(self, server: ServerRef) -> str:
        """A token of the server's owner for that server alone, minted when missing or
        about to end (HubApiError when the hub refuses)."""
        key = (server.user, server.name)
        held = self._tokens.get(key)
        if held is not None and held.expires_at - self._clock() > TOKEN_RENEW_BEFORE:
            return held.token
        model = await self.create_token(
            server.user, [server_scope(server.user, server.name)], TOKEN_LIFETIME, TOKEN_NOTE
        )
        self._tokens[key] = ServerToken(
            model["token"], model.get("id", ""), self._clock() + TOKEN_LIFETIME
        )
        if held is not None:
            await self._revoke(server.user, held)
        return model["token"]

    async def forget_servers_except(self, keep: set[tuple[str, str]]) -> None:
        """Servers gone (not in `keep`, as (user, server name)): their tokens are revoked
        (best effort; they end by themselves within the hour too)."""
        for key in set(self._tokens) - set(keep):
            await self._revoke(key[0], self._tokens.pop(key))

    async def _revoke(self, user: str, held: ServerToken) -> None:
        if not held.token_id:
            return
        try:
            await self.revoke_token(user, held.token_id)
        except HubApiError:
            pass

    def server_url(self, server: ServerRef, endpoint: str) -> str:
        """The server's GPU API: on its own host name when the hub gives it one (an absolute
        URL), else under the proxy's address."""
        base = server.url.rstrip("/")
        if not urlsplit(base).scheme:
            base = self.proxy_url + base
        return f"{base}/api/gpu/v1/{endpoint}"

    async def _server(self, server: ServerRef, method: str, endpoint: str, body: Any = None) -> Any:
        """A call to a server's GPU API: its parsed answer (untrusted), or None when it did
        not answer usefully."""
        try:
            token = await self.server_token(server)
        except (HubApiError, KeyError, TypeError):
            return None
        request = HTTPRequest(
            self.server_url(server, endpoint),
            method=method,
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=TIMEOUT,
            follow_redirects=False,
            ssl_options=self._proxy_ssl,
        )
        try:
            response = await self._servers_http.fetch(request)
            return strict_json(response.body)
        except HTTPClientError as e:
            if e.code in (401, 403):
                # Revoked by its owner (their token page lists it): mint anew next time.
                self._tokens.pop((server.user, server.name), None)
            return None
        except (OSError, ValueError, RecursionError):
            return None

    async def gpu_status(self, server: ServerRef) -> Any:
        """The server's latest GPU sample with its idle notice (untrusted), or None."""
        return await self._server(server, "GET", "status?history=0")

    async def warn(
        self, server: ServerRef, stop_at: float, idle_seconds: float, message: str
    ) -> bool:
        body = {"stop_at": stop_at, "idle_seconds": idle_seconds, "message": message}
        return await self._server(server, "POST", "reclaim", body) is not None

    async def send_usage(self, server: ServerRef, figures: dict) -> bool:
        """The owner's GPU-hours and budget warnings, for their GPU panel."""
        return await self._server(server, "POST", "usage", figures) is not None

    async def clear_warning(self, server: ServerRef) -> bool:
        return await self._server(server, "DELETE", "reclaim") is not None

    def close(self) -> None:
        super().close()
        self._servers_http.close()
