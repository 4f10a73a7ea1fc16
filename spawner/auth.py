"""Login for the default deployment: NativeAuthenticator with a generated first admin.

jupyterhub-nativeauthenticator gives sign-up, admin approval, bcrypt-hashed passwords and
lock-out after repeated failures. What it lacks is a first admin: someone must sign up as
the admin name before anyone else does. Here the admin account is created on first start
with a generated password that is printed once on the console and stored only as a hash.
"""

from __future__ import annotations

import secrets

from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as native_handlers
from tornado.escape import url_escape
from tornado.httputil import url_concat
from traitlets import Bool, Unicode


class NativeLoginHandler(native_handlers.LoginHandler):
    """NativeAuthenticator's login page, for JupyterHub 6.

    nativeauthenticator 1.3 still calls `self.statsd` (gone from JupyterHub 5) and its
    `_render` does not take JupyterHub's `sync` argument, so every login ends in HTTP 500.
    This keeps its page and messages, on JupyterHub's current handler API.
    """

    def _render(self, login_error=None, username=None, **kwargs):
        return self.render_template(
            "native-login.html",
            next=url_escape(self.get_argument("next", default="")),
            username=username,
            login_error=login_error,
            custom_html=self.authenticator.custom_html,
            login_url=self.settings["login_url"],
            enable_signup=self.authenticator.enable_signup,
            two_factor_auth=self.authenticator.allow_2fa,
            authenticator_login_url=url_concat(
                self.authenticator.login_url(self.hub.base_url),
                {"next": self.get_argument("next", "")},
            ),
            **kwargs,
        )

    async def post(self):
        data = {
            arg: self.get_argument(arg, strip=False)
            for arg in self.request.body_arguments
            if arg != "_xsrf"
        }
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        username = data.get("username", "")
        error = "Invalid username or password."
        info = self.authenticator.get_user(username) if username else None
        if info is not None and not info.is_authorized:
            if info.is_valid_password(data.get("password", "")):
                error = f"User {username} has not been authorized by an administrator yet."
        elif self.authenticator.is_blocked(self.authenticator.normalize_username(username)):
            error = "Too many failed attempts: this account is locked for a while."
        self.set_status(403)
        self.finish(await self._render(login_error=error, username=username))


class CUDANativeAuthenticator(NativeAuthenticator):
    """NativeAuthenticator that creates the first admin account itself."""

    first_admin = Unicode(
        "admin",
        config=True,
        help="Name of the admin account created on first start (also added to admin_users). "
        "Empty: create none.",
    )
    print_first_admin_password = Bool(
        True,
        config=True,
        help="Print the generated first-admin password on the console once. It is stored "
        "only as a bcrypt hash; change it at /hub/change-password after logging in.",
    )

    def get_handlers(self, app):
        return [
            (path, NativeLoginHandler if handler is native_handlers.LoginHandler else handler)
            for path, handler in super().get_handlers(app)
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.first_admin:
            self.admin_users = set(self.admin_users) | {self.first_admin}
            self._create_first_admin()

    def _create_first_admin(self) -> None:
        if self.user_exists(self.first_admin):
            return
        password = secrets.token_urlsafe(18)
        # create_user refuses when sign-up is closed; the first admin is not a sign-up.
        enable_signup, self.enable_signup = self.enable_signup, True
        try:
            info = self.create_user(self.first_admin, password)
        finally:
            self.enable_signup = enable_signup
        if info is None:
            self.log.error("Could not create the first admin %r", self.first_admin)
            return
        if self.print_first_admin_password:
            banner = "=" * 72
            # print, not log: a log shipper must not keep the password.
            print(
                f"\n{banner}\n  First start: created the admin account\n"
                f"    user:     {self.first_admin}\n    password: {password}\n"
                f"  It is shown only this once. Change it at /hub/change-password.\n{banner}\n",
                flush=True,
            )
