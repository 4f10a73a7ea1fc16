"""The GPU admin page: a hub service page behind hub OAuth.

Every GPU with its model, holder, server, profile, since when, live utilisation and memory,
and idle time; an admin can stop a server from it. Below, the line for busy GPUs: each place
with its user, GPUs and time waited; an admin can move a place to the front or remove it
(the waiting start then ends with a sentence for its user). Anyone else gets 403 with a
sentence.
The page renders the service's latest look at the fleet from memory, so it costs the same
with 500 users as with 5; the only hub call per request is whether the visitor is an admin
(cached for a few seconds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web

from ..gpu.waiting_line import WaitingLine
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


@dataclass(frozen=True)
class LinePlace:
    """One place in the line for busy GPUs, as the page shows it."""

    place: int
    user: str
    pool: str
    gpus: int
    waited: float  # seconds


def line_places(
    line: WaitingLine,
    now: float,
    held_by_group: Mapping[str, int] | None = None,
    shares: Mapping[str, int] | None = None,
) -> list[LinePlace]:
    """Every pool's places in serving order (the spawner's own rule, `WaitingLine.order`)."""
    places = []
    for pool in sorted({w.pool for w in line.waiters}):
        for i, w in enumerate(line.order(pool, held_by_group, shares), start=1):
            places.append(LinePlace(i, w.user, w.pool, w.gpus, max(0.0, now - w.joined)))
    return places


def render_page(
    rows: list[GpuRow],
    *,
    line: list[LinePlace] | None = None,
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
        line=line or [],
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

    async def line(self) -> list[LinePlace]:
        """The line's places now (the file the spawner keeps; [] without a line)."""
        store = self.fleet.line
        if store is None or not store.path.exists():
            return []
        waiting = await asyncio.to_thread(store.load)
        held = self.fleet.state.summary.held_by_group
        return line_places(waiting, time.time(), held, self.settings["line_shares"])

    def notify(self, message: str) -> None:
        """A notice for the admin's next page (see take_notice)."""
        self.set_signed_cookie(
            NOTICE_COOKIE, message, path=self.settings["prefix"], httponly=True, samesite="Strict"
        )

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
                line=await self.line(),
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
                "line": [p.__dict__ for p in await self.line()],
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
        self.notify(f"Stopped {label}'s server; its GPUs are free.")
        self.redirect(self.settings["prefix"])


class LineHandler(AdminHandler):
    """POST line (user, action): move that user's place to the front, or remove it."""

    @web.authenticated
    async def post(self) -> None:
        admin = await self.admin_only()
        user = self.get_body_argument("user", "").strip()
        action = self.get_body_argument("action", "")
        store = self.fleet.line
        if action not in ("front", "remove"):
            raise web.HTTPError(400, "Say 'front' or 'remove' for a place in the line.")
        if store is None or not user:
            raise web.HTTPError(400, "Say whose place in the line to change.")
        # Removing the place ends the user's waiting start within a second, with a sentence
        # on their page ("Your place in line for a GPU was removed; ...").
        change = store.move_to_front if action == "front" else store.leave
        changed = store.path.exists() and await asyncio.to_thread(change, user)
        if not changed:
            raise web.HTTPError(404, f"{user} has no place in the line.")
        self.fleet.log.info(
            "Admin %s %s %s in the GPU line",
            admin,
            "moved to the front" if action == "front" else "removed",
            user,
            extra={"user": user, "event": f"admin_line_{action}", "admin": admin},
        )
        done = "is first in" if action == "front" else "was removed from"
        self.notify(f"{user} {done} the line for GPUs.")
        self.redirect(self.settings["prefix"])


def make_app(
    fleet: FleetService,
    prefix: str,
    cookie_secret: bytes,
    line_shares: Mapping[str, int] | None = None,
    extra_routes: list | None = None,
    usage_store: Any = None,
) -> web.Application:
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    return web.Application(
        [
            (prefix, PageHandler),
            (url_path_join(prefix, "api/gpus"), TableHandler),
            (url_path_join(prefix, "stop"), StopHandler),
            (url_path_join(prefix, "line"), LineHandler),
            *(extra_routes or []),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ],
        fleet=fleet,
        is_admin=AdminCheck(fleet),
        prefix=prefix,
        line_shares=dict(line_shares or {}),
        usage_store=usage_store,
        cookie_secret=cookie_secret,
        xsrf_cookies=True,
    )
