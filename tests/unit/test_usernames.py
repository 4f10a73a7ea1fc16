"""The user-name policy (spawner.usernames): what is allowed, and why every allowed name
fits the names derived from it."""

from __future__ import annotations

import string

import pytest

from spawner.accounts import usernames
from spawner.accounts.usernames import (
    MAX_CERT_CN,
    MAX_CONTAINER_NAME,
    MAX_LENGTH,
    RULE,
    cert_common_name,
    container_name,
    docker_escape,
    is_allowed,
    username_problem,
    volume_name,
)


@pytest.mark.parametrize(
    "name", ["ann", "a", "jean-luc.picard", "user_42", "0day", "x" * MAX_LENGTH]
)
def test_ordinary_names_are_allowed(name):
    assert username_problem(name) is None


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("x\tonmouseover=alert(1)", "a tab"),
        ("x\nadmin", "a line break"),
        ("<script>", "'<'"),
        ('a"b', "a double quote"),
        ("a b", "a space"),
        ("ann/../bob", "'/'"),
        ("Ann", "'A'"),  # normalization lower-cases before the policy sees a name
        ("zoë", "'ë'"),
        ("a\x00b", "U+0000"),
    ],
)
def test_hostile_characters_are_refused_by_name_with_the_rule(name, named):
    problem = username_problem(name)
    assert problem is not None
    assert named in problem
    assert RULE in problem


@pytest.mark.parametrize("name", ["-rf", ".hidden", "_x", ".", ".."])
def test_a_name_must_start_with_a_letter_or_digit(name):
    problem = username_problem(name)
    assert problem and "start with a letter or a digit" in problem


def test_empty_name_asks_for_one():
    assert username_problem("").startswith("Please enter a user name.")


def test_too_long_says_how_long_and_the_limit():
    problem = username_problem("a" * (MAX_LENGTH + 1))
    assert problem == f"That user name has {MAX_LENGTH + 1} characters; at most 32 are allowed."


def test_many_separators_are_refused_when_the_container_name_would_not_fit():
    # 32 characters, 12 of which become three characters each in the container name.
    name = "a-" * 12 + "b" * 8
    assert len(name) <= MAX_LENGTH
    assert len(container_name(name)) > MAX_CONTAINER_NAME
    problem = username_problem(name)
    assert problem and "container name" in problem


def test_the_59_character_name_from_the_issue_is_refused():
    # Signed up fine before, then every spawn failed on the certificate's common name.
    assert not is_allowed("a" * 59)


@pytest.mark.parametrize(
    "name",
    [
        "a" * MAX_LENGTH,
        "a." * 11 + "b" * 10,  # the most separators a 32-character name may have
        "z" * 20,
    ],
)
def test_every_allowed_name_fits_container_volume_and_certificate(name):
    assert is_allowed(name)
    assert len(container_name(name)) <= MAX_CONTAINER_NAME
    assert len(cert_common_name(name)) <= MAX_CERT_CN
    vol = volume_name(name)
    assert len(vol) <= 255 and set(vol) <= set(string.ascii_lowercase + string.digits + "-")


def test_exhaustive_short_names_allowed_iff_they_fit():
    # Every 3-character name over a small alphabet: allowed exactly when the rules say so.
    alphabet = "a0.-_A\t<"
    for a in alphabet:
        for b in alphabet:
            for c in alphabet:
                name = a + b + c
                expected = (
                    set(name) <= set(string.ascii_lowercase + string.digits + "._-")
                    and name[0] in string.ascii_lowercase + string.digits
                )
                assert is_allowed(name) == expected, name


@pytest.mark.parametrize("name", ["ann", "jean-luc", "a.b_c", "x9", "a-2d"])
def test_escaping_matches_dockerspawner(name):
    from dockerspawner import DockerSpawner

    assert docker_escape(name) == DockerSpawner._escape(name)


def test_module_states_the_rule_it_enforces():
    assert str(MAX_LENGTH) in RULE and "'.', '_' and '-'" in RULE
    assert usernames.__doc__ and "63" in usernames.__doc__
