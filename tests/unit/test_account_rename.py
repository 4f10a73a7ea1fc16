"""A user the hub renames keeps their password; a stale sign-up under the new name goes."""

from __future__ import annotations

from jupyterhub import orm
from nativeauthenticator.orm import UserInfo

from spawner.accounts.rename import follow_renames


def _db():
    follow_renames()
    follow_renames()  # idempotent: one listener
    return orm.new_session_factory("sqlite://")()


def test_the_renamed_users_password_record_follows_and_a_pending_sign_up_of_that_name_goes():
    db = _db()
    alice = orm.User(name="alice")
    db.add_all(
        [
            alice,
            UserInfo(username="alice", password=b"alice-hash", is_authorized=True),
            UserInfo(username="alicia", password=b"strangers-hash", is_authorized=False),
            UserInfo(username="bob", password=b"bob-hash", is_authorized=True),
        ]
    )
    db.commit()

    alice.name = "alicia"  # what JupyterHub's PATCH /users/alice {"name": "alicia"} does
    db.commit()

    rows = {(u.username, u.password) for u in db.query(UserInfo)}
    assert rows == {("alicia", b"alice-hash"), ("bob", b"bob-hash")}


def test_a_new_user_and_an_unchanged_name_touch_no_record():
    db = _db()
    db.add(UserInfo(username="carol", password=b"carol-hash", is_authorized=True))
    carol = orm.User(name="carol")
    db.add(carol)
    db.commit()
    carol.name = "carol"
    db.commit()
    assert [(u.username, u.password) for u in db.query(UserInfo)] == [("carol", b"carol-hash")]
