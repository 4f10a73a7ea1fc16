"""The keys page: each user adds, names and removes their own SSH keys (hub login).

A JupyterHub service page (hub OAuth): only the logged-in user's own keys are shown or
changed, forms carry the hub's XSRF token, and a bad key comes back as a sentence on the
page, never a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web

from ..host.security_headers import set_security_headers
from .keys import KeyProblem, KeyStore

# A user name -> the account's stamp ("" for none known yet), None when the hub cannot say.
AccountLookup = Callable[[str], Awaitable[str | None]]

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
)


@dataclass(frozen=True)
class PageInfo:
    """What the page tells users about the gateway."""

    ssh_host: str
    ssh_port: int
    host_key_fingerprint: str
    host_key_line: str
    hub_url: str


def ssh_command(info: PageInfo, user: str) -> str:
    port = "" if info.ssh_port == 22 else f"-p {info.ssh_port} "
    return f"ssh {port}{user}@{info.ssh_host}"


class KeysPage(HubOAuthenticated, web.RequestHandler):
    """GET lists the user's keys; POST adds one."""

    def set_default_headers(self) -> None:
        set_security_headers(self)  # the same as the hub's own pages

    def initialize(
        self, store: KeyStore, info: PageInfo, prefix: str, accounts: AccountLookup
    ) -> None:
        self.store = store
        self.info = info
        self.prefix = prefix
        self.accounts = accounts
        self.account = ""

    async def prepare(self) -> None:
        # The account behind the name (its keys follow it across a rename, and a later
        # account of a deleted one's name never sees them).
        user = self.current_user
        if user is not None:
            account = await self.accounts(user["name"])
            if account is None:
                raise web.HTTPError(503, "The hub did not say who you are; reload the page.")
            self.account = account

    def render_page(self, status: int = 200, problem: str = "", notice: str = "", **form) -> None:
        user = self.current_user["name"]
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        html = _templates.get_template("keys.html").render(
            user=user,
            keys=self.store.keys(user, self.account),
            info=self.info,
            command=ssh_command(self.info, user),
            prefix=self.prefix,
            xsrf=self.xsrf_token.decode()
            if isinstance(self.xsrf_token, bytes)
            else self.xsrf_token,
            problem=problem,
            notice=notice,
            form=form,
        )
        self.finish(html)

    @web.authenticated
    def get(self) -> None:
        # Only fixed sentences from the query, so a link cannot put words on this page.
        notice = ""
        added = self.get_argument("added", "")
        if added.isdigit():
            key = next(
                (
                    k
                    for k in self.store.keys(self.current_user["name"], self.account)
                    if k.id == int(added)
                ),
                None,
            )
            if key is not None:
                notice = f"Added {key.name!r} ({key.fingerprint}); it logs in from now on."
        elif self.get_argument("removed", ""):
            notice = "Key removed; it no longer logs in."
        self.render_page(notice=notice)

    @web.authenticated
    def post(self) -> None:
        user = self.current_user["name"]
        text = self.get_body_argument("key", "")
        name = self.get_body_argument("name", "")
        try:
            added = self.store.add(user, text, name, self.account)
        except KeyProblem as e:
            self.render_page(400, problem=str(e), key=text[:4000], name=name[:200])
            return
        self.redirect(url_path_join(self.prefix, f"?added={added.id}"))


class RemoveKey(HubOAuthenticated, web.RequestHandler):
    """POST removes one of the user's own keys; it stops working at once."""

    def set_default_headers(self) -> None:
        set_security_headers(self)

    def initialize(
        self, store: KeyStore, info: PageInfo, prefix: str, accounts: AccountLookup
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.accounts = accounts

    @web.authenticated
    async def post(self, key_id: str) -> None:
        user = self.current_user["name"]
        account = await self.accounts(user)
        if account is None or not self.store.remove(user, int(key_id), account):
            raise web.HTTPError(404, "You have no key with that number; reload the page.")
        self.redirect(url_path_join(self.prefix, "?removed=1"))


def make_app(
    store: KeyStore,
    info: PageInfo,
    prefix: str,
    cookie_secret: bytes,
    accounts: AccountLookup,
) -> web.Application:
    """The tornado application serving the keys page under the service prefix."""
    args = {"store": store, "info": info, "prefix": prefix, "accounts": accounts}
    return web.Application(
        [
            (prefix, KeysPage, args),
            (url_path_join(prefix, "keys"), KeysPage, args),
            (url_path_join(prefix, r"keys/(\d+)/remove"), RemoveKey, args),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ],
        cookie_secret=cookie_secret,
        login_url=url_path_join(prefix, "oauth_callback"),
        xsrf_cookies=True,
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
