"""Objects on a shared engine: another owner's container, service or volume is refused with a
sentence and left as it is; ours and missing ones go ahead. The engine is a fake recording
every call (the real-engine proof: tests/integration/test_shared_engine.py)."""

from __future__ import annotations

import logging

import pytest
from docker.errors import NotFound

from spawner.engine.foreign_objects import account_volume, ensure_volume, foreign_refusal
from spawner.engine.hub_identity import ACCOUNT_LABEL, HUB_LABEL, MOUNT_LABEL, account_stamp

LOG = logging.getLogger("test")


class FakeEngine:
    def __init__(self, objects: dict[str, dict]) -> None:
        self.objects = objects
        self.calls: list[tuple] = []

    async def __call__(self, method: str, *args, **kwargs):
        self.calls.append((method, *args))
        if method.startswith("inspect_"):
            if args[0] not in self.objects:
                raise NotFound(f"no such object: {args[0]}")
            return self.objects[args[0]]
        if method == "remove_volume":
            del self.objects[args[0]]
            return None
        if method == "volumes":  # label filters, as the engine applies them
            wanted = dict(f.split("=", 1) for f in kwargs["filters"]["label"])
            found = [
                {"Name": n, "CreatedAt": o.get("CreatedAt", ""), "Labels": o["Labels"]}
                for n, o in self.objects.items()
                if wanted.items() <= (o.get("Labels") or {}).items()
            ]
            return {"Volumes": found}
        if method == "create_volume":
            self.objects[args[0]] = {"Labels": kwargs["labels"]}
            return self.objects[args[0]]
        raise AssertionError(f"unexpected Docker call {method}")


@pytest.mark.parametrize(
    "inspect, obj",
    [
        ("inspect_container", {"Config": {"Labels": {HUB_LABEL: "hub-staging"}}}),
        ("inspect_service", {"Spec": {"Labels": {HUB_LABEL: "hub-staging"}}}),
        ("inspect_container", {"Config": {"Labels": {}}}),  # an admin's docker run
    ],
)
async def test_another_owners_container_or_service_is_refused_with_its_name(inspect, obj, caplog):
    engine = FakeEngine({"jupyter-alice": obj})
    refusal = await foreign_refusal(engine, inspect, "jupyter-alice", "hub-me", LOG)
    assert refusal is not None and refusal.status_code == 409
    assert "jupyter-alice" in refusal.jupyterhub_message
    assert "left untouched" in refusal.jupyterhub_message
    assert "docker rm -f jupyter-alice" in caplog.text  # the admin is told what to do
    assert engine.calls == [(inspect, "jupyter-alice")]  # looked at, nothing else


@pytest.mark.parametrize(
    "inspect, objects",
    [
        ("inspect_container", {"jupyter-alice": {"Config": {"Labels": {HUB_LABEL: "hub-me"}}}}),
        ("inspect_service", {"jupyter-alice": {"Spec": {"Labels": {HUB_LABEL: "hub-me"}}}}),
        ("inspect_container", {}),
    ],
)
async def test_our_own_or_no_object_goes_ahead(inspect, objects):
    assert (
        await foreign_refusal(FakeEngine(objects), inspect, "jupyter-alice", "hub-me", LOG) is None
    )


async def test_a_missing_volume_is_made_with_this_hubs_label():
    engine = FakeEngine({})
    await ensure_volume(engine, "jupyterhub-user-alice", "hub-me", "alice", LOG)
    assert engine.objects["jupyterhub-user-alice"]["Labels"] == {
        HUB_LABEL: "hub-me",
        "org.cudaspawner.user": "alice",
    }


async def test_another_hubs_volume_is_refused_and_left_alone():
    theirs = {"Labels": {HUB_LABEL: "hub-staging"}}
    engine = FakeEngine({"jupyterhub-user-alice": theirs})
    with pytest.raises(Exception) as refused:
        await ensure_volume(engine, "jupyterhub-user-alice", "hub-me", "alice", LOG)
    assert refused.value.status_code == 409
    assert "belongs to another hub" in refused.value.jupyterhub_message
    assert [c[0] for c in engine.calls] == ["inspect_volume"]
    assert engine.objects["jupyterhub-user-alice"] is theirs


async def test_an_unlabelled_volume_is_used_as_it_is():
    engine = FakeEngine({"jupyterhub-user-alice": {"Labels": None}})
    await ensure_volume(engine, "jupyterhub-user-alice", "hub-me", "alice", LOG)
    assert [c[0] for c in engine.calls] == ["inspect_volume"]


# --- homes bound to accounts, not only to names ------------------------------------------------
async def test_a_new_home_records_the_account_it_was_made_for():
    engine = FakeEngine({})
    await ensure_volume(engine, "cudaspawner-home-carol", "hub-me", "carol", LOG, "7@20261204")
    assert engine.objects["cudaspawner-home-carol"]["Labels"][ACCOUNT_LABEL] == "7@20261204"


async def test_the_same_account_gets_its_home_back():
    labels = {HUB_LABEL: "hub-me", ACCOUNT_LABEL: "7@20261204"}
    engine = FakeEngine({"cudaspawner-home-carol": {"Labels": labels}})
    await ensure_volume(engine, "cudaspawner-home-carol", "hub-me", "carol", LOG, "7@20261204")
    assert [c[0] for c in engine.calls] == ["inspect_volume"]


async def test_a_later_account_of_the_same_name_is_refused_an_earlier_ones_home(caplog):
    labels = {HUB_LABEL: "hub-me", ACCOUNT_LABEL: "7@20261204"}
    engine = FakeEngine({"cudaspawner-home-carol": {"Labels": labels}})
    with pytest.raises(Exception) as refused:
        await ensure_volume(engine, "cudaspawner-home-carol", "hub-me", "carol", LOG, "9@20261205")
    assert refused.value.status_code == 409
    assert "earlier account named carol" in refused.value.jupyterhub_message
    assert "cudaspawner-admin homes" in caplog.text
    assert [c[0] for c in engine.calls] == ["inspect_volume"]  # nothing changed


async def test_a_certificate_volume_of_an_earlier_account_is_made_afresh():
    labels = {HUB_LABEL: "hub-me", ACCOUNT_LABEL: "7@20261204"}
    engine = FakeEngine({"jupyterssl-carol": {"Labels": labels}})
    await ensure_volume(
        engine, "jupyterssl-carol", "hub-me", "carol", LOG, "9@20261205", replace_earlier=True
    )
    assert [c[0] for c in engine.calls] == ["inspect_volume", "remove_volume", "create_volume"]
    assert engine.objects["jupyterssl-carol"]["Labels"][ACCOUNT_LABEL] == "9@20261205"


async def test_a_renamed_account_finds_the_home_it_made_under_its_earlier_name():
    """alice made her home as cudaspawner-home-alice; the admin renamed her alicia."""
    engine = FakeEngine({})
    await ensure_volume(
        engine, "cudaspawner-home-alice", "hub-me", "alice", LOG, "7@2026", mount="/home/jovyan"
    )
    assert engine.objects["cudaspawner-home-alice"]["Labels"][MOUNT_LABEL] == "/home/jovyan"
    kept = await account_volume(
        engine, "hub-me", "7@2026", "/home/jovyan", "cudaspawner-home-alicia"
    )
    assert kept == "cudaspawner-home-alice"
    # Not another account's home, not another mount, not another hub's volume.
    for hub, account, mount in [
        ("hub-me", "9@2027", "/home/jovyan"),
        ("hub-me", "7@2026", "/data"),
        ("hub-other", "7@2026", "/home/jovyan"),
    ]:
        assert await account_volume(engine, hub, account, mount, "x") == "x"


async def test_todays_name_wins_when_the_account_has_two_homes():
    labels = {HUB_LABEL: "hub-me", ACCOUNT_LABEL: "7@2026", MOUNT_LABEL: "/home/jovyan"}
    engine = FakeEngine(
        {
            "home-alice": {"Labels": labels, "CreatedAt": "2026-01-01T00:00:00Z"},
            "home-alicia": {"Labels": labels, "CreatedAt": "2026-06-01T00:00:00Z"},
        }
    )
    assert await account_volume(engine, "hub-me", "7@2026", "/home/jovyan", "home-alicia") == (
        "home-alicia"
    )
    assert await account_volume(engine, "hub-me", "7@2026", "/home/jovyan", "home-al") == (
        "home-alice"
    )


def test_an_account_stamp_differs_for_a_reused_id_made_at_another_time():
    from datetime import datetime

    first = account_stamp(7, datetime(2026, 12, 4, 7, 0, 0, 1))
    again = account_stamp(7, datetime(2026, 12, 4, 9, 0, 0, 2))
    assert first != again and first.startswith("7@")


def test_orphaned_homes_are_those_whose_account_is_gone_and_only_this_hubs_count():
    from spawner.admin.orphan_homes import homes

    volumes = [
        {"Name": "h-carol", "Labels": {HUB_LABEL: "hub-me", ACCOUNT_LABEL: "7@a",
                                       "org.cudaspawner.user": "carol"}},
        {"Name": "h-dan", "Labels": {HUB_LABEL: "hub-me", ACCOUNT_LABEL: "8@b",
                                     "org.cudaspawner.user": "dan"}},
        {"Name": "h-old", "Labels": {HUB_LABEL: "hub-me"}},  # before accounts: not judged
        {"Name": "h-other", "Labels": {HUB_LABEL: "hub-staging", ACCOUNT_LABEL: "1@c"}},
    ]  # fmt: skip
    found = homes(volumes, {"8@b"}, "hub-me", {"h-dan": ["jupyter-dan"]})
    assert [(h.volume, h.orphaned, h.in_use_by) for h in found] == [
        ("h-carol", True, ()),
        ("h-dan", False, ("jupyter-dan",)),
    ]
