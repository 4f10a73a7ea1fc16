"""Resetting a lost first-admin password in a hub database with NativeAuthenticator's schema."""

from __future__ import annotations

import io
import sqlite3

import bcrypt
import pytest
from jupyterhub import orm
from nativeauthenticator.orm import UserInfo

from spawner.admin.recovery import main


@pytest.fixture
def hub_db(tmp_path):
    """A hub database as JupyterHub + NativeAuthenticator create it, with a first admin."""
    path = tmp_path / "jupyterhub.sqlite"
    session = orm.new_session_factory(f"sqlite:///{path}")()
    session.add(orm.User(name="admin", admin=True))
    session.add(orm.User(name="root-admin", admin=True))
    old = bcrypt.hashpw(b"lost-forever", bcrypt.gensalt())
    session.add(UserInfo(username="admin", password=old, is_authorized=True))
    session.commit()
    session.close()
    return path


def _hash(path, user):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT password, is_authorized FROM users_info WHERE username = ?",
                          (user,)).fetchone()  # fmt: skip


def test_the_printed_password_logs_in_and_the_old_one_no_longer_does(hub_db, capsys):
    assert main(["reset-password", "--db", str(hub_db)]) == 0
    out = capsys.readouterr().out
    password = out.split("New password for admin: ")[1].split()[0]
    stored, authorized = _hash(hub_db, "admin")
    assert bcrypt.checkpw(password.encode(), stored) and authorized
    assert not bcrypt.checkpw(b"lost-forever", stored)


def test_password_from_stdin_is_not_printed(hub_db, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-new-long-password\n"))
    assert main(["reset-password", "admin", "--db", str(hub_db), "--password-stdin"]) == 0
    assert "a-new-long-password" not in capsys.readouterr().out
    assert bcrypt.checkpw(b"a-new-long-password", _hash(hub_db, "admin")[0])


def test_an_admin_without_a_password_record_gets_one(hub_db, capsys):
    assert main(["reset-password", "root-admin", "--db", str(hub_db)]) == 0
    assert "Password record created for 'root-admin'" in capsys.readouterr().out
    assert _hash(hub_db, "root-admin")[1] == 1


@pytest.mark.parametrize(
    ("argv", "stdin", "sentence"),
    [
        (["reset-password", "nobody"], "", "No account 'nobody'"),
        (["reset-password", "--password-stdin"], "short\n", "at least 10 characters"),
        (["reset-password", "--db", "/nonexistent/jupyterhub.sqlite"], "", "No hub database"),
    ],
)
def test_mistakes_are_one_sentence_and_exit_1(hub_db, capsys, monkeypatch, argv, stdin, sentence):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    if "--db" not in argv:
        argv = [*argv, "--db", str(hub_db)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err
