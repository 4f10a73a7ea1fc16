"""The service's HTTP edge: the hub's REST API with the service's token, and each server's GPU
API (`api/gpu/v1/...`) through the proxy, with the same token.

The token's scopes (granted by `operations.service_roles`) decide what it may do: list users
and their servers, stop servers, and reach servers (`access:servers`), which is what the
single-user server checks before answering its GPU API. Nothing here runs inside a
container, and nothing here decides.
"""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

TIMEOUT = 10.0  # seconds: one slow server must not hold up a look at the fleet for long
STOP_TIMEOUT = 60.0


class HubUnreachable(Exception):
    """The hub's API did not answer as expected; the message says what happened."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class HubClient:
    def __init__(
        self,
        api_url: str,
        token: str,
        proxy_url: str,
        *,
        proxy_ca: str | None = None,
        hub_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/") + "/"
        self.proxy_url = proxy_url.rstrip("/")
        self._headers = {"Authorization": f"token {token}"}
        self._hub_ssl = hub_ssl
        self._proxy_ssl: ssl.SSLContext | None = None
        if self.proxy_url.startswith("https"):
            self._proxy_ssl = ssl.create_default_context(cafile=proxy_ca)
        self._http = AsyncHTTPClient(force_instance=True, max_clients=16)

    async def _hub(self, method: str, path: str, body: Any = None, timeout: float = TIMEOUT) -> Any:
        request = HTTPRequest(
            self.api_url + path,
            method=method,
            headers={**self._headers, "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=timeout,
            ssl_options=self._hub_ssl,
        )
        try:
            response = await self._http.fetch(request)
        except HTTPClientError as e:
            detail = e.response.body.decode(errors="replace")[:200] if e.response else ""
            raise HubUnreachable(f"{method} {path}: HTTP {e.code} {detail}", e.code) from None
        except OSError as e:
            raise HubUnreachable(f"{method} {path}: {e}") from None
        return json.loads(response.body) if response.body else None

    async def active_users(self) -> list[dict]:
        """Users with at least one active server, with their servers, their containers' ids
        (server state) and their groups."""
        users = await self._hub("GET", "users?state=active&limit=100000")
        if isinstance(users, dict):  # a paginated answer
            users = users.get("items", [])
        return users

    async def user(self, name: str) -> dict | None:
        try:
            return await self._hub("GET", f"users/{quote(name, safe='')}")
        except HubUnreachable as e:
            if e.code == 404:
                return None
            raise

    async def stop_server(self, user: str, server_name: str) -> None:
        path = f"users/{quote(user, safe='')}/server"
        if server_name:
            path += f"s/{quote(server_name, safe='')}"
        # The hub answers 204 once stopped, or 202 after its slow_stop_timeout (10 s) while
        # the stop goes on: both are a stop under way.
        await self._hub("DELETE", path, timeout=STOP_TIMEOUT)

    async def _server(
        self, server_url: str, method: str, endpoint: str, body: Any = None
    ) -> dict | None:
        """A call to a server's GPU API; None when it did not answer usefully."""
        request = HTTPRequest(
            f"{self.proxy_url}{server_url.rstrip('/')}/api/gpu/v1/{endpoint}",
            method=method,
            headers={**self._headers, "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=TIMEOUT,
            follow_redirects=False,
            ssl_options=self._proxy_ssl,
        )
        try:
            response = await self._http.fetch(request)
            return json.loads(response.body)
        except (HTTPClientError, OSError, ValueError):
            return None

    async def gpu_status(self, server_url: str) -> dict | None:
        """The server's latest GPU sample with its idle notice, or None."""
        return await self._server(server_url, "GET", "status?history=0")

    async def warn(
        self, server_url: str, stop_at: float, idle_seconds: float, message: str
    ) -> bool:
        body = {"stop_at": stop_at, "idle_seconds": idle_seconds, "message": message}
        return await self._server(server_url, "POST", "reclaim", body) is not None

    async def clear_warning(self, server_url: str) -> bool:
        return await self._server(server_url, "DELETE", "reclaim") is not None

    def close(self) -> None:
        self._http.close()
