"""Login for the default deployment: NativeAuthenticator with a generated first admin.

jupyterhub-nativeauthenticator gives sign-up, admin approval, bcrypt-hashed passwords and
lock-out after repeated failures. What it lacks is a first admin: someone must sign up as
the admin name before anyone else does. Here the admin account is created on first start
with a generated password that is printed once on the console and stored only as a hash.
"""

from __future__ import annotations

import secrets

from nativeauthenticator import NativeAuthenticator
from traitlets import Bool, Unicode


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
