"""The hub answers on its own name only, never on a user's.

With one origin per user server the proxy still sends every host name to the hub when no
more specific route matches (JupyterHub's `/` route, so that `alice.<domain>/user/alice/`
reaches the hub while her server is stopped). Left alone, the hub would then serve its own
pages on a user's origin: `mallory.<domain>/hub/login` would log a visitor in *on
mallory's origin*, where mallory's script could read `/hub/token` and mint their tokens.
So a hub page asked for on a user's name is redirected to the hub's own name (GET, HEAD)
or refused (anything else). Requests from inside the hub's network (the servers' API
calls, by address) and JupyterHub's own `/user/...` redirects are not touched.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REFUSED = "The hub answers on its own address only: use {hub}."


def foreign_host(host: str, domain: str) -> bool:
    """Whether a request's host name is a user's (or service's) name under the hub's domain."""
    name = host.lower().rstrip(".")
    return name != domain and name.endswith("." + domain)


def hub_page_path(path: str, base_url: str = "/") -> bool:
    """Whether a path is one of the hub's own pages (everything but `/user/...`, which
    JupyterHub itself redirects to the hub's name when the server is not running)."""
    return not path.startswith(base_url.rstrip("/") + "/user/")


def install(domain: str, hub_origin: str, base_url: str = "/") -> None:
    """Wrap JupyterHub's `BaseHandler.prepare` (every hub page and API handler) with the check."""
    from jupyterhub.handlers.base import BaseHandler
    from tornado import web

    original = BaseHandler.prepare
    if getattr(original, "_cudaspawner_host_guard", False):
        return
    hub = urlsplit(hub_origin)

    async def prepare(self) -> None:
        request = self.request
        if foreign_host(request.host_name, domain) and hub_page_path(request.path, base_url):
            if request.method in ("GET", "HEAD"):
                target = urlunsplit((hub.scheme, hub.netloc, request.path, request.query, ""))
                self.redirect(target)
                raise web.Finish()  # also past the prepare() of subclasses
            raise web.HTTPError(403, REFUSED.format(hub=hub_origin))
        await original(self)

    prepare._cudaspawner_host_guard = True  # type: ignore[attr-defined]
    BaseHandler.prepare = prepare
