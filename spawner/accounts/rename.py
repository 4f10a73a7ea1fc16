"""A user renamed through the hub's API keeps their password.

JupyterHub renames the user (`PATCH /hub/api/users/OLD {"name": "NEW"}`) without telling the
authenticator, and NativeAuthenticator keeps its own record of each name and password: the
renamed user could no longer log in, and the old name stayed taken. Listening on the hub's
own ORM attribute, the record is renamed in the same database transaction as the user.
"""

from __future__ import annotations

from jupyterhub import orm
from nativeauthenticator.orm import UserInfo
from sqlalchemy import delete, event
from sqlalchemy.orm import object_session


def follow_renames() -> None:
    """Rename NativeAuthenticator's record whenever the hub renames a user (idempotent)."""
    if not event.contains(orm.User.name, "set", _renamed):
        event.listen(orm.User.name, "set", _renamed)


def _renamed(user: orm.User, new: object, old: object, _initiator: object) -> None:
    if not (isinstance(old, str) and isinstance(new, str)) or old == new:
        return  # a new user's first name, or no change
    session = object_session(user)
    if session is None:
        return
    # The rename itself is not flushed yet: querying must not flush it half-way.
    with session.no_autoflush:
        # A sign-up under the new name that never became an account (pending, or approved
        # but never logged in) would log in to the renamed user's account: it goes.
        # Deleted at once, so the rename below never meets it (the name is unique).
        session.execute(delete(UserInfo).where(UserInfo.username == new))
        info = session.query(UserInfo).filter_by(username=old).one_or_none()
        if info is not None:
            info.username = new
