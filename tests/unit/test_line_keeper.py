"""After a hub restart, the places in the GPU line are started again; pure decisions."""

from __future__ import annotations

from spawner.gpu.waiting_line import Waiter
from spawner.services.line_keeper import STALE_AFTER, line_actions

NOW = 1_800_000_000.0


def waiter(user: str, server: str = "") -> Waiter:
    key = f"{user}/{server}" if server else user
    return Waiter(user, key, "host", 1, NOW - 600, (), {"profile": "gpu", "wait": True})


def test_a_place_no_start_looks_after_is_started_again():
    lost, fresh = waiter("carol"), waiter("dave")
    seen = {"carol": NOW - STALE_AFTER - 1, "dave": NOW - 2}
    actions = line_actions([lost, fresh], seen, {}, NOW)
    assert actions.restart == (lost,) and actions.drop == ()


def test_a_waiting_start_and_a_server_started_some_other_way():
    pending, running = waiter("carol"), waiter("dave", "big")
    servers = {
        "carol": {"": {"pending": "spawn", "ready": False}},
        "dave": {"big": {"pending": None, "ready": True}},
    }
    seen = {"carol": NOW - 3600, "dave": NOW - 3600}
    actions = line_actions([pending, running], seen, servers, NOW)
    assert actions.restart == () and actions.drop == (running,)


def test_another_server_of_the_user_does_not_count_for_the_waiting_one():
    w = waiter("carol")
    servers = {"carol": {"cpu": {"pending": None, "ready": True}}}
    assert line_actions([w], {"carol": None}, servers, NOW).restart == (w,)


def test_a_place_whose_start_still_looks_is_left_alone_whatever_the_hub_says():
    # A pending server being stopped reads "ready" for a moment: its start gives the place up.
    w = waiter("carol")
    servers = {"carol": {"": {"pending": None, "ready": True}}}
    actions = line_actions([w], {"carol": NOW - 1}, servers, NOW)
    assert actions.restart == () and actions.drop == ()
