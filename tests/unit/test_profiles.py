"""Image profiles: the admin's list is checked at start-up, a user's choice on every spawn."""

from __future__ import annotations

import pytest

from spawner.planning.choice import Choice, UserOptionsError, validate_user_options
from spawner.planning.profiles import (
    ProfileConfigError,
    default_profile,
    derive_slug,
    parse_profiles,
    profiles_for_user,
)

# --- the admin's configuration -----------------------------------------------------------

GOOD = {"display_name": "PyTorch", "image": "cudaspawner/pytorch:latest", "gpus": [1, 2]}


def test_a_full_profile_keeps_every_setting_the_admin_gave():
    raw = {
        "display_name": "PyTorch 2.9 / CUDA 12",
        "description": "torch with CUDA",
        "default": True,
        "image": "cudaspawner/pytorch-cuda:2.9",
        "gpus": {"choices": [4, 1, 2], "default": 2},
        "cpu_limit": 8,
        "mem_limit": "32G",
        "shm_size": "8g",
        "environment": {"OMP_NUM_THREADS": "8"},
        "volumes": {"/srv/datasets": {"bind": "/data", "mode": "ro"}, "scratch": "/scratch"},
        "groups": ["gpu-users"],
        "users": ["alice"],
    }
    (p,) = parse_profiles([raw])
    assert p.slug == "pytorch-2-9-cuda-12"
    assert (p.gpu_choices, p.gpu_default, p.max_gpus) == ((1, 2, 4), 2, 4)
    assert p.cpu_limit == 8.0 and p.mem_limit == "32G" and p.shm_size == "8g"
    assert p.environment == {"OMP_NUM_THREADS": "8"}
    assert p.volumes["/srv/datasets"] == {"bind": "/data", "mode": "ro"}
    assert p.groups == frozenset({"gpu-users"}) and p.users == frozenset({"alice"})
    # The profile owns copies: editing the config afterwards changes nothing.
    raw["environment"]["OMP_NUM_THREADS"] = "1"
    assert p.environment == {"OMP_NUM_THREADS": "8"}


@pytest.mark.parametrize(
    ("gpus", "choices", "default"),
    [
        (0, (0,), 0),
        (2, (2,), 2),
        ([0, 1, 2, 4], (0, 1, 2, 4), 0),
        ([2, 0, 1], (0, 1, 2), 2),  # a plain list: the first entry is the default
        ({"choices": [0, 1, 2, 4], "default": 1}, (0, 1, 2, 4), 1),
        ({"choices": [1, 2]}, (1, 2), 1),
    ],
)
def test_gpu_syntax_gives_sorted_choices_and_the_default(gpus, choices, default):
    (p,) = parse_profiles([{"display_name": "X", "gpus": gpus}])
    assert (p.gpu_choices, p.gpu_default) == (choices, default)


def test_a_profile_without_gpus_key_is_cpu_only_and_open_to_everyone():
    (p,) = parse_profiles([{"display_name": "CPU only"}])
    assert (p.slug, p.gpu_choices, p.gpu_default, p.image) == ("cpu-only", (0,), 0, None)
    assert p.groups is None and p.users is None


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("PyTorch 2.9 / CUDA 12", "pytorch-2-9-cuda-12"),
        ("  CPU only  ", "cpu-only"),
        ("Données été", "donnees-ete"),
        ("x" * 100, "x" * 64),
    ],
)
def test_slug_is_derived_from_the_display_name(name, slug):
    assert derive_slug(name) == slug


@pytest.mark.parametrize(
    ("raw", "profile", "field", "says"),
    [
        ([{"display_name": "A", "gpu": 1}], "A", "gpu", "Did you mean 'gpus'"),
        ([{"display_name": "A", "overrides": {}}], "A", "overrides", "unknown key"),
        ([GOOD, {**GOOD, "description": "x"}], "PyTorch", "slug", "'pytorch' is already used"),
        (
            [{"display_name": "PyTorch 2.9"}, {"display_name": "pytorch-2.9"}],
            "pytorch-2.9",
            "slug",
            "'pytorch-2-9' is already used by Profile 0 ('PyTorch 2.9')",
        ),
        (
            [{"display_name": "A", "slug": "b"}, {"display_name": "B"}],
            "B",
            "slug",
            "'b' is already used",
        ),
        (
            [{"display_name": "A", "default": True}, {"display_name": "B", "default": True}],
            "B",
            "default",
            "already the default",
        ),
        ([{"display_name": "A", "gpus": -1}], "A", "gpus", "cannot be negative (-1)"),
        ([{"display_name": "A", "gpus": [0, -2]}], "A", "gpus", "cannot be negative (-2)"),
        ([{"display_name": "A", "gpus": {"choices": [-1]}}], "A", "gpus", "cannot be negative"),
        (
            [{"display_name": "A", "gpus": {"choices": [0, 1], "default": 2}}],
            "A",
            "gpus",
            "the default 2 is not among the choices 0 or 1",
        ),
        ([{"display_name": "A", "gpus": "2"}], "A", "gpus", "whole number, not '2'"),
        ([{"display_name": "A", "gpus": 1.5}], "A", "gpus", "whole number, not 1.5"),
        ([{"display_name": "A", "gpus": True}], "A", "gpus", "whole number, not True"),
        ([{"display_name": "A", "gpus": []}], "A", "gpus", "non-empty list"),
        ([{"display_name": "A", "gpus": [1, 1]}], "A", "gpus", "list a count twice"),
        ([{"display_name": "A", "gpus": {"default": 1}}], "A", "gpus", "needs 'choices'"),
        ([{"display_name": "A", "gpus": {"choices": [1], "max": 2}}], "A", "gpus", "'max'"),
        ([{"display_name": "A", "gpus": 100_000}], "A", "gpus", "typo"),
        ([{"description": "no name"}], "0", "display_name", "required"),
        ([{"display_name": 7}], "0", "display_name", "non-empty string"),
        ([{"display_name": "A", "slug": "Bad Slug"}], "A", "slug", "not a valid slug"),
        ([{"display_name": "!!!"}], "!!!", "slug", "set 'slug' explicitly"),
        ([{"display_name": "A", "description": 5}], "A", "description", "must be a string"),
        ([{"display_name": "A", "default": "yes"}], "A", "default", "True or False"),
        ([{"display_name": "A", "image": ""}], "A", "image", "non-empty image name"),
        ([{"display_name": "A", "cpu_limit": "4"}], "A", "cpu_limit", "number of CPUs"),
        ([{"display_name": "A", "cpu_limit": 0}], "A", "cpu_limit", "greater than 0"),
        ([{"display_name": "A", "mem_limit": "8g"}], "A", "mem_limit", "upper-case"),
        ([{"display_name": "A", "mem_limit": 8}], "A", "mem_limit", "such as '8G'"),
        ([{"display_name": "A", "shm_size": "lots"}], "A", "shm_size", "such as '2g'"),
        ([{"display_name": "A", "environment": ["A=1"]}], "A", "environment", "a dict"),
        ([{"display_name": "A", "environment": {"N": 1}}], "A", "environment", "quote numbers"),
        ([{"display_name": "A", "environment": {"1X": "a"}}], "A", "environment", "'1X'"),
        ([{"display_name": "A", "volumes": {"v": "data"}}], "A", "volumes", "absolute"),
        (
            [{"display_name": "A", "volumes": {"v": {"bind": "/d", "mode": "x"}}}],
            "A",
            "volumes",
            "'ro' or 'rw'",
        ),
        ([{"display_name": "A", "groups": "staff"}], "A", "groups", "not a single string"),
        ([{"display_name": "A", "users": [1]}], "A", "users", "not a name"),
        (["cpu"], "0", None, "must be a dict"),
    ],
)
def test_each_admin_mistake_stops_with_the_profile_and_field_named(raw, profile, field, says):
    with pytest.raises(ProfileConfigError) as info:
        parse_profiles(raw)
    message = str(info.value)
    assert says in message
    assert info.value.profile == profile
    assert info.value.field == field
    if field is not None:
        assert repr(field) in message
    if profile.isdigit():
        assert f"Profile {profile}" in message
    else:
        assert repr(profile) in message


@pytest.mark.parametrize("raw", [{"display_name": "A"}, "cpu", 3])
def test_profiles_that_are_not_a_list_are_refused(raw):
    with pytest.raises(ProfileConfigError, match="must be a list of dicts"):
        parse_profiles(raw)


# --- who may use which --------------------------------------------------------------------

PROFILES = parse_profiles(
    [
        {"display_name": "CPU only", "slug": "cpu"},
        {
            "display_name": "PyTorch",
            "slug": "pytorch",
            "gpus": {"choices": [0, 1, 2, 4], "default": 1},
            "default": True,
        },
        {"display_name": "One GPU", "slug": "one-gpu", "gpus": 1},
        {"display_name": "Staff 8 GPUs", "slug": "staff", "gpus": 8, "groups": ["staff"]},
        {"display_name": "Bob's", "slug": "bob", "users": ["bob"], "groups": []},
    ]
)
VISIBLE = profiles_for_user(PROFILES, "alice", ["students"])


def slugs(profiles):
    return [p.slug for p in profiles]


def test_profiles_without_groups_or_users_are_for_everyone_in_admin_order():
    assert slugs(VISIBLE) == ["cpu", "pytorch", "one-gpu"]


def test_group_members_and_listed_users_see_their_restricted_profiles():
    assert slugs(profiles_for_user(PROFILES, "carol", ["students", "staff"])) == [
        "cpu",
        "pytorch",
        "one-gpu",
        "staff",
    ]
    assert "bob" in slugs(profiles_for_user(PROFILES, "bob", []))
    assert "bob" not in slugs(profiles_for_user(PROFILES, "bobby", ["bob"]))


def test_default_is_the_marked_profile_else_the_first_visible():
    assert default_profile(VISIBLE).slug == "pytorch"
    without_marked = [p for p in VISIBLE if p.slug != "pytorch"]
    assert default_profile(without_marked).slug == "cpu"
    assert default_profile([]) is None


def test_a_hidden_profile_is_refused_exactly_like_one_that_does_not_exist():
    messages = []
    for slug in ("staff", "nosuch"):
        with pytest.raises(UserOptionsError) as info:
            validate_user_options({"profile": slug}, VISIBLE)
        assert info.value.field == "profile"
        messages.append(str(info.value).replace(repr(slug), "<slug>"))
    assert messages[0] == messages[1]
    assert "staff" not in messages[0] and "Staff" not in messages[0]


def test_a_group_member_may_choose_the_profile_hidden_from_others():
    visible = profiles_for_user(PROFILES, "carol", ["staff"])
    assert validate_user_options({"profile": "staff"}, visible) == Choice(PROFILES[3], 8)


def test_a_removed_profile_gets_a_clear_message_listing_what_is_offered():
    with pytest.raises(UserOptionsError) as info:
        validate_user_options({"profile": "gone"}, VISIBLE)
    assert str(info.value) == (
        "The profile 'gone' is not offered (or no longer offered). "
        "Pick one of: 'cpu', 'pytorch', 'one-gpu'."
    )


def test_a_user_with_no_profile_at_all_is_told_to_ask_the_admin():
    with pytest.raises(UserOptionsError, match="No server profile is available"):
        validate_user_options({}, [])


# --- a user's options ---------------------------------------------------------------------


def deeply_nested(depth: int = 100_000):
    """A list nested far beyond the recursion limit: it must never be walked or printed."""
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


PICK = "Pick one of: 'cpu', 'pytorch', 'one-gpu'."

BAD_OPTIONS = [
    ("a string", "user_options", 'must be an object such as {"profile": "cpu"}, not \'a string\''),
    (["pytorch"], "user_options", "must be an object"),
    (None, "user_options", "not null"),
    (
        {"profile": "nope"},
        "profile",
        f"The profile 'nope' is not offered (or no longer offered). {PICK}",
    ),
    ({"profile": "PyTorch"}, "profile", "The profile 'PyTorch' is not offered"),
    ({"profile": " pytorch"}, "profile", "The profile ' pytorch' is not offered"),
    ({"profile": "staff"}, "profile", "The profile 'staff' is not offered"),
    ({"profile": ""}, "profile", f"No profile was chosen. {PICK}"),
    ({"gpus": 1}, "profile", "No profile was chosen"),
    ({"profile": 3}, "profile", f"'profile' must be a profile name (text), not 3. {PICK}"),
    ({"profile": None}, "profile", "not null"),
    ({"profile": ["cpu"]}, "profile", "not a list"),
    ({"profile": {"slug": "cpu"}}, "profile", "not an object"),
    ({"profile": True}, "profile", "not true/false"),
    ({"profile": deeply_nested()}, "profile", "not a list"),
    ({"profile": "x" * 100_000}, "profile", "too long (100000 characters; profile names have"),
    ({"profile": "cpu\n<b>"}, "profile", "The profile 'cpu\\n<b>' is not offered"),
    (
        {"profile": "pytorch", "gpus": 3},
        "gpus",
        "The profile 'pytorch' offers 0, 1, 2 or 4 GPUs, not 3.",
    ),
    ({"profile": "pytorch", "gpus": 8}, "gpus", "offers 0, 1, 2 or 4 GPUs, not 8"),
    ({"profile": "pytorch", "gpus": -1}, "gpus", "'gpus' cannot be negative (got -1)."),
    (
        {"profile": "pytorch", "gpus": "-1"},
        "gpus",
        "'gpus' must be a whole number such as 1, not '-1'.",
    ),
    ({"profile": "pytorch", "gpus": "2.5"}, "gpus", "not '2.5'"),
    ({"profile": "pytorch", "gpus": "abc"}, "gpus", "not 'abc'"),
    ({"profile": "pytorch", "gpus": ""}, "gpus", "not ''"),
    ({"profile": "pytorch", "gpus": " 2"}, "gpus", "not ' 2'"),
    ({"profile": "pytorch", "gpus": "\uff12"}, "gpus", "whole number"),  # fullwidth 2
    ({"profile": "pytorch", "gpus": "9" * 7}, "gpus", "whole number"),
    ({"profile": "pytorch", "gpus": "1" * 5000}, "gpus", "'11111"),
    ({"profile": "pytorch", "gpus": 2.0}, "gpus", "not the decimal number 2.0"),
    ({"profile": "pytorch", "gpus": 2.5}, "gpus", "not the decimal number 2.5"),
    ({"profile": "pytorch", "gpus": float("nan")}, "gpus", "not a decimal number"),
    ({"profile": "pytorch", "gpus": True}, "gpus", "not true/false"),
    ({"profile": "pytorch", "gpus": False}, "gpus", "not true/false"),
    ({"profile": "pytorch", "gpus": [1]}, "gpus", "not a list"),
    ({"profile": "pytorch", "gpus": {"count": 1}}, "gpus", "not an object"),
    ({"profile": "pytorch", "gpus": 10**100}, "gpus", "not a number far too large"),
    ({"profile": "pytorch", "gpus": 10**5000}, "gpus", "far too large"),
    ({"profile": "pytorch", "gpus": -(10**5000)}, "gpus", "cannot be negative"),
    (
        {"profile": "one-gpu", "gpus": 2},
        "gpus",
        "The profile 'one-gpu' comes with exactly 1 GPU, so 'gpus' cannot be 2; "
        "leave 'gpus' out or send 1.",
    ),
    ({"profile": "cpu", "gpus": 1}, "gpus", "comes with exactly 0 GPUs"),
    (
        {"profile": "cpu", "image": "evil:latest"},
        "image",
        "Choosing an image is not allowed on this hub. Pick a profile instead:",
    ),
    ({"Profile": "cpu"}, "Profile", "Unknown option 'Profile'"),
    ({"profile": "cpu", "gpus": 0, "mem_limit": "1T"}, "mem_limit", "Unknown option"),
    ({f"k{i}": i for i in range(1000)}, "k0", "Unknown option 'k0' (and 999 more)"),
    ({"<script>" * 50: 1}, "user_options", "Unknown option '" + "<script>" * 5 + "…'"),
    ({1: "x"}, "user_options", "Unknown option 1."),
]


@pytest.mark.parametrize(("options", "field", "says"), BAD_OPTIONS)
def test_bad_user_options_are_refused_naming_the_field_and_what_is_allowed(options, field, says):
    with pytest.raises(UserOptionsError) as info:
        validate_user_options(options, VISIBLE)
    assert says in str(info.value)
    assert info.value.field == field
    # Messages stay short whatever was sent: no huge echo of the input.
    assert len(str(info.value)) < 300


def test_at_least_thirty_bad_inputs_are_covered():
    assert len(BAD_OPTIONS) >= 30


@pytest.mark.parametrize(
    ("options", "slug", "gpus"),
    [
        ({}, "pytorch", 1),  # empty: the default profile and its default count
        ({"profile": "pytorch"}, "pytorch", 1),  # gpus left out: the profile's default
        ({"profile": "pytorch", "gpus": None}, "pytorch", 1),  # null counts as left out
        ({"profile": "pytorch", "gpus": "2"}, "pytorch", 2),  # what a form posts
        ({"profile": "pytorch", "gpus": "04"}, "pytorch", 4),
        ({"profile": "pytorch", "gpus": 0}, "pytorch", 0),
        ({"profile": "pytorch", "gpus": 4}, "pytorch", 4),
        ({"profile": "one-gpu"}, "one-gpu", 1),
        ({"profile": "one-gpu", "gpus": 1}, "one-gpu", 1),
        ({"profile": "cpu", "gpus": "0"}, "cpu", 0),
    ],
)
def test_good_user_options_give_the_profile_and_gpu_count(options, slug, gpus):
    choice = validate_user_options(options, VISIBLE)
    assert (choice.profile.slug, choice.gpus) == (slug, gpus)
    assert isinstance(choice.gpus, int) and not isinstance(choice.gpus, bool)


def test_empty_options_without_a_marked_default_give_the_first_visible_profile():
    visible = [p for p in VISIBLE if p.slug != "pytorch"]
    assert validate_user_options({}, visible) == Choice(visible[0], 0)
