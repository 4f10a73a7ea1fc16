"""What the gateway asks the hub, and which container it may enter.

The hub's REST API (with the service's own token) says whether a user's default server
is running and which container the spawner made for it (the spawner's state,
`object_id`). The container is then used only if its labels name the same user and
server: a container this hub did not create for that user is never entered.
`choose_container` is that decision as a pure function.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..labels import SERVER_LABEL, USER_LABEL


@dataclass(frozen=True)
class Target:
    """The container a session runs in, and as whom."""

    container_id: str
    name: str
    user: str  # the container's user (uid:gid or name), never empty
    home: str
    env: dict[str, str]


class NoServer(Exception):
    """The user has no running server; the message tells them how to start one."""


def choose_container(
    user: str, user_model: Mapping, container_attrs: Mapping | None
) -> tuple[Target | None, str]:
    """(target, "") when `user`'s running default server is `container_attrs`, else (None, why)."""
    server = (user_model.get("servers") or {}).get("")
    if not server:
        return None, "no server"
    if not server.get("ready"):
        return None, "starting"
    if container_attrs is None:
        return None, "no container"
    labels = (container_attrs.get("Config") or {}).get("Labels") or {}
    if labels.get(USER_LABEL) != user or labels.get(SERVER_LABEL) != user:
        return None, "container labels name another user"
    if not (container_attrs.get("State") or {}).get("Running"):
        return None, "container not running"
    config = container_attrs.get("Config") or {}
    env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
    container_user = config.get("User") or ""
    if not container_user or container_user.split(":")[0] in ("0", "root"):
        # The spawner never runs a user as root by default; an SSH session must not either.
        return None, "container runs as root"
    home = env.get("HOME") or config.get("WorkingDir") or "/"
    return (
        Target(
            container_id=container_attrs["Id"],
            name=(container_attrs.get("Name") or "").lstrip("/"),
            user=container_user,
            home=home,
            env=env,
        ),
        "",
    )


def _ssl_context() -> ssl.SSLContext | None:
    """Client certificates for the hub's internal TLS, as the hub hands them to services."""
    keyfile = os.environ.get("JUPYTERHUB_SSL_KEYFILE")
    certfile = os.environ.get("JUPYTERHUB_SSL_CERTFILE")
    cafile = os.environ.get("JUPYTERHUB_SSL_CLIENT_CA")
    if not (keyfile and certfile):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


class HubClient:
    """The few hub API calls the gateway makes, with the service's token."""

    def __init__(self, api_url: str, token: str) -> None:
        self.api_url = api_url.rstrip("/") + "/"
        self.token = token
        self.ssl = _ssl_context()
        self.http = AsyncHTTPClient()

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = HTTPRequest(
            self.api_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            ssl_options=self.ssl,
            request_timeout=30,
        )
        response = await self.http.fetch(request)
        return json.loads(response.body) if response.body else {}

    async def user(self, name: str) -> dict | None:
        try:
            return await self._call("GET", f"users/{quote(name, safe='')}")
        except HTTPClientError as e:
            if e.code == 404:
                return None
            raise

    async def record_activity(self, name: str, when: datetime | None = None) -> None:
        """Tell the hub the user is active, as jupyterhub-singleuser does (idle culler)."""
        stamp = (when or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z")
        await self._call(
            "POST",
            f"users/{quote(name, safe='')}/activity",
            {"last_activity": stamp, "servers": {"": {"last_activity": stamp}}},
        )

    async def start_server(self, name: str) -> None:
        try:
            await self._call("POST", f"users/{quote(name, safe='')}/server", {})
        except HTTPClientError as e:
            if e.code == 400 and e.response is not None and b"already" in e.response.body:
                return
            message = ""
            if e.response is not None and e.response.body:
                try:
                    message = json.loads(e.response.body).get("message", "")
                except ValueError:
                    pass
            raise NoServer(message or f"The hub could not start your server ({e.code}).") from e
