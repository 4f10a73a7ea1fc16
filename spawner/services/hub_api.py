"""The hub's REST API as our managed services call it, with their own token: one client.

The operations service (`services.hub_client.HubClient`, which adds the calls to user servers)
and the SSH gateway both speak to the hub through `HubApi`. Over internal TLS a service
presents the client certificate the hub handed it (`service_ssl_context`). Every failure, an
HTTP error or an unreachable hub, is one `HubApiError` carrying the status and the hub's own
message, so that callers decide on data, not on tornado's exceptions.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

TIMEOUT = 30.0  # seconds, unless a caller says otherwise


class HubApiError(Exception):
    """The hub's API did not answer as expected; the message says what happened."""

    def __init__(self, message: str, code: int | None = None, hub_message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.hub_message = hub_message  # the hub's own sentence, when it gave one


def service_ssl_context(environ: Mapping[str, str] = os.environ) -> ssl.SSLContext | None:
    """The client certificate and authority the hub hands its managed services for internal
    TLS; None when the hub speaks plain HTTP."""
    if not environ.get("JUPYTERHUB_SSL_CERTFILE"):
        return None
    from jupyterhub.utils import make_ssl_context

    return make_ssl_context(
        environ["JUPYTERHUB_SSL_KEYFILE"],
        environ["JUPYTERHUB_SSL_CERTFILE"],
        cafile=environ.get("JUPYTERHUB_SSL_CLIENT_CA"),
    )


def _path(user: str, *rest: str) -> str:
    return "/".join(["users", quote(user, safe=""), *rest])


class HubApi:
    """The calls our services make to the hub's REST API."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.api_url = api_url.rstrip("/") + "/"
        self._headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
        self._ssl = ssl_context
        self._timeout = timeout
        self._http = AsyncHTTPClient(force_instance=True, max_clients=16)

    async def call(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> Any:
        """One request; its parsed JSON answer (None when empty), or HubApiError."""
        request = HTTPRequest(
            self.api_url + path,
            method=method,
            headers=self._headers,
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=timeout or self._timeout,
            ssl_options=self._ssl,
        )
        try:
            response = await self._http.fetch(request)
        except HTTPClientError as e:
            raw = e.response.body if e.response is not None and e.response.body else b""
            detail = raw.decode(errors="replace")[:200]
            raise HubApiError(
                f"{method} {path}: HTTP {e.code} {detail}", e.code, _hub_message(raw)
            ) from None
        except OSError as e:
            raise HubApiError(f"{method} {path}: {e}") from None
        return json.loads(response.body) if response.body else None

    async def user(self, name: str) -> dict | None:
        """The user's model, or None when there is no such user."""
        try:
            return await self.call("GET", _path(name))
        except HubApiError as e:
            if e.code == 404:
                return None
            raise

    async def active_users(self) -> list[dict]:
        """Users with at least one active server, with their servers, their containers' ids
        (server state) and their groups."""
        users = await self.call("GET", "users?state=active&limit=100000")
        if isinstance(users, dict):  # a paginated answer
            users = users.get("items", [])
        return users

    async def start_server(
        self, user: str, options: dict | None = None, server_name: str = ""
    ) -> None:
        """Start a server of the user's (with these user options); one already starting or
        running is fine."""
        path = _path(user, "server")
        if server_name:
            path = _path(user, "servers", quote(server_name, safe=""))
        try:
            await self.call("POST", path, options or {})
        except HubApiError as e:
            if e.code == 400 and "already" in str(e):
                return
            raise

    async def stop_server(self, user: str, server_name: str = "", timeout: float = 60.0) -> None:
        """Stop a server. The hub answers 204 once stopped, or 202 after its
        slow_stop_timeout (10 s) while the stop goes on: both are a stop under way."""
        path = _path(user, "server")
        if server_name:
            path = _path(user, "servers", quote(server_name, safe=""))
        await self.call("DELETE", path, timeout=timeout)

    async def record_activity(self, user: str, when: datetime | None = None) -> None:
        """Tell the hub the user is active, as jupyterhub-singleuser does (idle culler)."""
        stamp = (when or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z")
        await self.call(
            "POST",
            _path(user, "activity"),
            {"last_activity": stamp, "servers": {"": {"last_activity": stamp}}},
        )

    async def create_token(self, user: str, scopes: list[str], expires_in: int, note: str) -> dict:
        """A new API token of `user` (its model, with the token itself)."""
        return await self.call(
            "POST",
            _path(user, "tokens"),
            {"scopes": scopes, "expires_in": expires_in, "note": note},
        )

    async def revoke_token(self, user: str, token_id: str) -> None:
        await self.call("DELETE", _path(user, "tokens", quote(token_id, safe="")))

    def close(self) -> None:
        self._http.close()


def _hub_message(raw: bytes) -> str:
    try:
        message = json.loads(raw).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return message if isinstance(message, str) else ""
