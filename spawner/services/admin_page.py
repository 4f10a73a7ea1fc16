"""The GPU admin page: a hub service page behind hub OAuth.

Every GPU with its model, holder, server, profile, since when, live utilisation and memory,
and idle time; an admin can stop a server from it. Anyone else gets 403 with a sentence.
The page renders the service's latest look at the fleet from memory, so it costs the same
with 500 users as with 5; the only hub call per request is whether the visitor is an admin
(cached for a few seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web

from ..host.security_headers import set_security_headers
from .fleet import GpuRow
from .fleet_service import FleetService
from .hub_api import HubApiError
from .server_figures import finite_number

TEMPLATES = Path(__file__).parent / "templates"
ADMIN_CACHE_SECONDS = 10.0
NOTICE_COOKIE = "cudaspawner-gpu-admin-notice"
NOT_ADMIN = "Only hub admins can see the GPU fleet. Ask an admin if you need this page."

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())


# The cells below take anything: one odd row must never fail the page for everyone.


def mib(value: Any) -> str:
    """Bytes as GiB with one decimal (the column is "Memory (GiB)"); "-" for anything else."""
    number = finite_number(value)
    return "-" if number is None else f"{number / 2**30:.1f}"


def percent(value: Any) -> str:
    number = finite_number(value)
    return "-" if number is None else f"{number:g} %"


def ago(seconds: Any) -> str:
    seconds = finite_number(seconds)
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def left(until: Any, now: float) -> str:
    """Time left until `until` (a warning's stop), "-" when that is not a time."""
    until = finite_number(until)
    return "-" if until is None else ago(until - now)


def render_page(
    rows: list[GpuRow],
    *,
    looked_at: float | None,
    now: float,
    prefix: str,
    xsrf_form_html: str,
    message: str = "",
    problem: str = "",
) -> str:
    """The page's HTML (pure; the benchmark times it)."""
    held = [r for r in rows if not r.free]
    return _env.get_template("gpu_admin.html").render(
        rows=rows,
        held=len(held),
        total=len(rows),
        idle=sum(1 for r in held if r.idle_seconds is not None),
        servers=len({r.server for r in held}),
        looked_at=time.strftime("%H:%M:%S UTC", time.gmtime(looked_at)) if looked_at else None,
        now=now,
        prefix=prefix,
        xsrf_form_html=xsrf_form_html,
        message=message,
        problem=problem,
        mib=mib,
        percent=percent,
        ago=ago,
        left=left,
    )


class AdminCheck:
    """Is this user a hub admin? Asked of the hub with the service's token, kept briefly."""

    def __init__(self, service: FleetService, clock: Callable[[], float] = time.monotonic):
        self.service = service
        self.clock = clock
        self._cache: dict[str, tuple[float, bool]] = {}

    async def __call__(self, name: str) -> bool:
        hit = self._cache.get(name)
        if hit and self.clock() - hit[0] < ADMIN_CACHE_SECONDS:
            return hit[1]
        model = await self.service.client.user(name)
        admin = bool(model and model.get("admin"))
        self._cache[name] = (self.clock(), admin)
        return admin


class AdminHandler(HubOAuthenticated, web.RequestHandler):
    def set_default_headers(self) -> None:
        set_security_headers(self)  # the same as the hub's own pages

    @property
    def fleet(self) -> FleetService:
        return self.settings["fleet"]

    async def admin_only(self) -> str:
        """The admin's name; 403 with a sentence for everyone else."""
        user = self.current_user  # HubOAuthenticated: None sends the browser to log in
        if not await self.settings["is_admin"](user["name"]):
            raise web.HTTPError(403, NOT_ADMIN)
        return user["name"]

    def take_notice(self) -> str:
        """The notice our own last action left (a signed cookie, read once): never words
        from the URL, which anyone could send an admin a link with."""
        value = self.get_signed_cookie(NOTICE_COOKIE, max_age_days=1)
        if value is not None:
            self.clear_cookie(NOTICE_COOKIE, path=self.settings["prefix"])
        return value.decode(errors="replace") if value else ""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(_env.get_template("error.html").render(status=status_code, message=message))


class PageHandler(AdminHandler):
    @web.authenticated
    async def get(self) -> None:
        await self.admin_only()
        state = self.fleet.state
        self.finish(
            render_page(
                state.rows,
                looked_at=state.looked_at,
                now=time.time(),
                prefix=self.settings["prefix"],
                xsrf_form_html=self.xsrf_form_html(),
                message=self.take_notice(),
                problem=state.problem,
            )
        )


class TableHandler(AdminHandler):
    """GET api/gpus: the same table as JSON."""

    @web.authenticated
    async def get(self) -> None:
        await self.admin_only()
        state = self.fleet.state
        self.set_header("Cache-Control", "no-store")
        self.finish(
            {
                "looked_at": state.looked_at,
                "gpus": [{**r.__dict__, "free": r.free} for r in state.rows],
                "summary": state.summary.__dict__,
            }
        )


class StopHandler(AdminHandler):
    """POST stop (user, server): stop that server; its GPUs are free again."""

    @web.authenticated
    async def post(self) -> None:
        admin = await self.admin_only()
        user = self.get_body_argument("user", "").strip()
        server = self.get_body_argument("server", "").strip()
        if not user:
            raise web.HTTPError(400, "Say which user's server to stop.")
        try:
            await self.fleet.stop_server(user, server)
        except HubApiError as e:
            raise web.HTTPError(502, f"The hub did not stop the server: {e}") from None
        label = f"{user}/{server}" if server else user
        self.fleet.log.info(
            "Admin %s stopped %s from the GPU page",
            admin,
            label,
            extra={"user": user, "server": label, "event": "admin_stop", "admin": admin},
        )
        message = f"Stopped {label}'s server; its GPUs are free."
        self.set_signed_cookie(
            NOTICE_COOKIE, message, path=self.settings["prefix"], httponly=True, samesite="Strict"
        )
        self.redirect(self.settings["prefix"])


def make_app(fleet: FleetService, prefix: str, cookie_secret: bytes) -> web.Application:
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    return web.Application(
        [
            (prefix, PageHandler),
            (url_path_join(prefix, "api/gpus"), TableHandler),
            (url_path_join(prefix, "stop"), StopHandler),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ],
        fleet=fleet,
        is_admin=AdminCheck(fleet),
        prefix=prefix,
        cookie_secret=cookie_secret,
        xsrf_cookies=True,
    )
