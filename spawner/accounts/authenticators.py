"""Login for the default deployment: NativeAuthenticator with a generated first admin.

jupyterhub-nativeauthenticator gives sign-up, admin approval and bcrypt-hashed passwords.
What it lacks is a first admin: someone must sign up as the admin name before anyone else
does. Here the admin account is created on first start with a generated password that is
printed once on the console and stored only as a hash.

Its pages and handlers are carried here, corrected (nativeauthenticator 1.3):

- user names follow one policy (`spawner.accounts.usernames`) at sign-up, admin creation and login,
  refused with a sentence saying what is allowed;
- the approval page quotes and escapes user data (upstream writes the name into an
  unquoted `id=` attribute, so a tab in a name starts an event handler in the admin's page);
- approving and discarding are POST with `_xsrf` (upstream changes state on a GET, so any
  link an admin opens can approve an account);
- failed logins slow down per (user, source address) with a growing delay, instead of
  locking the account for everyone after a few wrong passwords.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from jinja2 import ChoiceLoader, FileSystemLoader
from jupyterhub.apihandlers.users import UserListAPIHandler
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from jupyterhub.scopes import needs_scope
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as native_handlers
from nativeauthenticator.orm import UserInfo
from tornado import web
from tornado.escape import url_escape
from tornado.httputil import url_concat
from traitlets import Bool, Float, Unicode

from .login_throttle import LoginThrottle, client_address, login_wait_message
from .rename import follow_renames
from .usernames import username_problem

TEMPLATES = Path(__file__).parents[1] / "templates" / "native"


# --- handlers ------------------------------------------------------------------------------
class _CarriedTemplates(native_handlers.LocalBase):
    """Puts spawner/templates/native first in the hub's template search path (once)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        env = self.settings["jinja2_env"]
        if not getattr(env, "_cudaspawner_native", False):
            env.loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES)), env.loader])
            env._cudaspawner_native = True


class NativeLoginHandler(native_handlers.LoginHandler):
    """NativeAuthenticator's login page, for JupyterHub 6.

    nativeauthenticator 1.3 still calls `self.statsd` (gone from JupyterHub 5) and its
    `_render` does not take JupyterHub's `sync` argument, so every login ends in HTTP 500.
    This keeps its page and messages, on JupyterHub's current handler API, and says why a
    login was refused: a name the policy does not allow, or a delay after failed tries.
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
        username = data.get("username", "")
        name = self.authenticator.normalize_username(username)
        problem = username_problem(name)
        if problem:
            self.set_status(403)
            self.finish(await self._render(login_error=problem, username=username))
            return
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        error = "Invalid username or password."
        wait = self.authenticator.login_wait(name, client_address(self))
        info = self.authenticator.get_user(name)
        if wait > 0:
            error = login_wait_message(wait)
        elif info is not None and not info.is_authorized:
            if info.is_valid_password(data.get("password", "")):
                error = f"User {name} has not been authorized by an administrator yet."
        self.set_status(403)
        self.finish(await self._render(login_error=error, username=username))


class SignUpHandler(_CarriedTemplates, native_handlers.SignUpHandler):
    """Sign-up that refuses a name outside the policy with the policy's own sentence."""

    async def post(self):
        if not self.authenticator.enable_signup:
            raise web.HTTPError(404)
        name = self.authenticator.normalize_username(
            self.get_body_argument("username", "", strip=False)
        )
        problem = username_problem(name)
        if problem is None:
            await super().post()
            return
        self.set_status(400)
        html = await self.render_template(
            "signup.html",
            ask_email=self.authenticator.ask_email_on_signup,
            result_message=problem,
            alert="alert-danger",
            two_factor_auth=self.authenticator.allow_2fa,
            recaptcha_key=self.authenticator.recaptcha_key,
            tos=self.authenticator.tos,
        )
        self.finish(html)


class AuthorizationAreaHandler(_CarriedTemplates):
    """The admin's list of accounts (/hub/authorize): every user datum quoted and escaped,
    every change a POST form carrying `_xsrf`."""

    @needs_scope("admin:users")
    async def get(self):
        users = self.db.query(UserInfo).order_by(UserInfo.id).all()
        html = await self.render_template(
            "cudaspawner-authorize.html",
            ask_email=self.authenticator.ask_email_on_signup,
            users=users,
            problems={u.username: username_problem(u.username) for u in users},
        )
        self.finish(html)


class AuthorizeHandler(_CarriedTemplates):
    """POST /hub/authorize/<name> with action=authorize|unauthorize. No GET: a link can
    change nothing, and the hub's XSRF check applies to every POST."""

    @needs_scope("admin:users")
    async def post(self, name: str):
        action = self.get_body_argument("action", "")
        if action not in ("authorize", "unauthorize"):
            raise web.HTTPError(400, "Say action=authorize or action=unauthorize.")
        info = self.authenticator.get_user(name)
        if info is None:
            raise web.HTTPError(404, f"There is no sign-up for {name!r}.")
        if action == "authorize":
            problem = username_problem(info.username)
            if problem:
                raise web.HTTPError(400, f"Cannot authorize this account: {problem}")
        if info.is_authorized != (action == "authorize"):
            UserInfo.change_authorization(self.db, info.username)
            self.log.info("%s %sd %s", self.current_user.name, action, info.username)
        self.redirect(self.hub.base_url + "authorize", status=303)


class DiscardHandler(_CarriedTemplates):
    """POST /hub/discard/<name>: delete a sign-up that was not authorized. No GET."""

    @needs_scope("admin:users")
    async def post(self, name: str):
        info = self.authenticator.get_user(name)
        if info is not None and not info.is_authorized:
            username = info.username
            self.authenticator.delete_user(type("User", (), {"name": username}))
            if self.users.get(username) is not None:
                self.users.delete(username)
            self.log.info("%s discarded the sign-up of %s", self.current_user.name, username)
        self.redirect(self.hub.base_url + "authorize", status=303)


class UserCreationAPIHandler(UserListAPIHandler):
    """POST /hub/api/users (the admin page's "Add users") with the policy's sentence.

    JupyterHub refuses a name that `validate_username` rejects with only "Invalid
    username: <name>"; this says what is allowed first, then lets JupyterHub create them.
    """

    @needs_scope("admin:users")
    async def post(self):
        data = self.get_json_body()
        names = data.get("usernames") if isinstance(data, dict) else None
        if isinstance(names, list):
            for name in names:
                if not isinstance(name, str):
                    raise web.HTTPError(400, "User names must be strings.")
                problem = username_problem(self.authenticator.normalize_username(name))
                if problem:
                    raise web.HTTPError(400, f"Cannot create {name!r}: {problem}")
        await super().post()


# --- authenticators ----------------------------------------------------------------------------
class UsernamePolicy:
    """Mixin for an Authenticator: the one user-name policy (`spawner.accounts.usernames`)."""

    def validate_username(self, username: str) -> bool:
        return super().validate_username(username) and username_problem(username) is None

    def get_handlers(self, app):
        return [*super().get_handlers(app), (r"/api/users", UserCreationAPIHandler)]


class CUDASharedPasswordAuthenticator(UsernamePolicy, SharedPasswordAuthenticator):
    """JupyterHub's shared-password login (quick trials) under the same user-name policy."""


_NATIVE_REPLACEMENTS = {
    native_handlers.LoginHandler: NativeLoginHandler,
    native_handlers.SignUpHandler: SignUpHandler,
    native_handlers.AuthorizationAreaHandler: AuthorizationAreaHandler,
    native_handlers.ToggleAuthorizationHandler: AuthorizeHandler,
    native_handlers.DiscardHandler: DiscardHandler,
}


class CUDANativeAuthenticator(UsernamePolicy, NativeAuthenticator):
    """NativeAuthenticator that creates the first admin account itself, under the
    user-name policy, with corrected pages and a per-source login throttle.

    `allowed_failed_logins` is the number of free failures per (user, source address) and
    `seconds_before_next_try` the longest delay; nobody's account is ever locked for
    everyone.
    """

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
    login_delay_base = Float(
        2.0,
        config=True,
        help="Seconds a (user, source address) pair waits after its first failed login "
        "beyond `allowed_failed_logins`; each further failure doubles it, up to "
        "`seconds_before_next_try`.",
    )

    def get_handlers(self, app):
        return [
            (path, _NATIVE_REPLACEMENTS.get(handler, handler))
            for path, handler in super().get_handlers(app)
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.throttle = LoginThrottle(
            free_failures=self.allowed_failed_logins,
            base_delay=self.login_delay_base,
            max_delay=self.seconds_before_next_try,
        )
        if self.first_admin:
            self.admin_users = set(self.admin_users) | {self.first_admin}
            self._create_first_admin()
        follow_renames()  # a user the hub renames keeps their password

    # The per-account lock of NativeAuthenticator is replaced by the throttle.
    def is_blocked(self, username: str) -> bool:
        return False

    def add_login_attempt(self, username: str) -> None:
        return None

    def login_wait(self, name: str, source: str) -> float:
        return self.throttle.wait(name, source)

    async def authenticate(self, handler, data):
        name = self.normalize_username(data.get("username", ""))
        source = client_address(handler)
        if self.throttle.wait(name, source) > 0:
            self.log.warning("Login for %r from %s refused: waiting after failures", name, source)
            return None
        result = await super().authenticate(handler, data)
        if result is None:
            self.throttle.failed(name, source)
        else:
            self.throttle.succeeded(name, source)
        return result

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
