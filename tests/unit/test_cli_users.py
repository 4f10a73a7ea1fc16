"""`cudaspawner-gpus users`: existing accounts whose names break the user-name policy."""

from __future__ import annotations

import json
import sqlite3

import pytest

from spawner.accounts.usernames import RULE
from spawner.admin.gpus_cli import bad_user_names, main


def hub_db(path, users=(), signups=()) -> str:
    """A database with the two tables the hub and NativeAuthenticator keep accounts in."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("CREATE TABLE users_info (id INTEGER PRIMARY KEY, username TEXT)")
    db.executemany("INSERT INTO users (name) VALUES (?)", [(u,) for u in users])
    db.executemany("INSERT INTO users_info (username) VALUES (?)", [(u,) for u in signups])
    db.commit()
    db.close()
    return str(path)


def test_bad_names_are_listed_once_each_with_what_is_wrong():
    found = bad_user_names(["ann", "x\ty", "x\ty", "a" * 40, "ok.name"])
    assert [n for n, _ in found] == ["x\ty", "a" * 40]
    assert "cannot contain a tab" in found[0][1] and RULE not in found[0][1]
    assert "40 characters" in found[1][1]


def test_report_lists_hub_users_and_pending_signups_and_exits_1(tmp_path, capsys):
    db = hub_db(tmp_path / "hub.sqlite", users=["admin", "ann", "Bad Name"], signups=["ann", "<b>"])
    assert main(["users", "--db", db]) == 1
    out = capsys.readouterr().out
    assert "'Bad Name'" in out and "'<b>'" in out and "'ann'" not in out
    assert "2 of 4 account names break the policy" in out


def test_clean_database_exits_0_and_json_is_machine_readable(tmp_path, capsys):
    db = hub_db(tmp_path / "hub.sqlite", users=["admin", "ann"], signups=["ann"])
    assert main(["users", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"total": 2, "bad": []}


def test_missing_database_is_one_sentence_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDASPAWNER_DATA", str(tmp_path))
    assert main(["users"]) == 2
    err = capsys.readouterr().err
    assert f"No hub database at {tmp_path}/jupyterhub.sqlite" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["users", "--help"]])
def test_help_says_what_the_exit_status_means(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert "Exit status 1" in capsys.readouterr().out
