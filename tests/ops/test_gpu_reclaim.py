"""When an idle server is warned and stopped: `gpu_reclaim.decide`, pure."""

from __future__ import annotations

import pytest

from spawner.services.gpu_reclaim import (
    UNRECLAIMED,
    Look,
    ReclaimPolicy,
    Watch,
    busiest,
    decide,
    parse_policies,
    policy_for,
)

POLICY = ReclaimPolicy(idle_after=60, warn_for=30, threshold=5)


def run(looks, policy=POLICY, reclaim=True, watch=None):
    """Feed looks (t, utilisation[, kept_at]) in order; the actions, and the last watch."""
    watch = watch or Watch()
    actions = []
    for look in looks:
        watch, action = decide(watch, Look(*look), policy, reclaim)
        actions.append(action)
    return actions, watch


def test_an_idle_server_is_warned_after_idle_after_then_stopped_after_warn_for():
    actions, watch = run([(0, 0), (59, 1), (60, 0), (89, 0), (90, 0)])
    assert actions == ["none", "none", "warn", "none", "stop"]
    assert watch.stop_at == 90


def test_a_busy_server_is_never_warned():
    actions, watch = run([(t, 50) for t in range(0, 600, 30)])
    assert set(actions) == {"none"} and watch.idle_since is None


def test_work_during_the_warning_withdraws_it_and_restarts_the_idle_period():
    actions, watch = run([(0, 0), (60, 0), (70, 80), (80, 0), (139, 0), (140, 0)])
    assert actions == ["none", "warn", "clear", "none", "none", "warn"]


def test_keep_withdraws_the_warning_and_counts_from_the_press():
    actions, watch = run([(0, 0), (60, 0), (65, 0, 63.0), (122, 0, 63.0), (123, 0, 63.0)])
    assert actions == ["none", "warn", "clear", "none", "warn"]
    assert watch.stop_at == 153


def test_the_same_keep_is_counted_once():
    # The idle period counts from the press (t=1), and the press counts only once.
    actions, _ = run([(2, 0, 1.0), (60, 0, 1.0), (61, 0, 1.0), (70, 0, 1.0), (91, 0, 1.0)])
    assert actions == ["none", "none", "warn", "none", "stop"]


def test_an_unreadable_look_decides_nothing():
    actions, watch = run([(0, 0), (60, 0), (100, None), (200, None)])
    assert actions == ["none", "warn", "none", "none"]
    assert run([(300, 0)], watch=watch)[0] == ["stop"]  # the next good look acts


def test_exempt_servers_are_tracked_but_never_warned_and_lose_a_standing_warning():
    actions, watch = run([(0, 0), (600, 0), (6000, 0)], reclaim=False)
    assert set(actions) == {"none"} and watch.idle_seconds(6000) == 6000
    warned = Watch(idle_since=0, stop_at=90)
    assert decide(warned, Look(70, 0), POLICY, reclaim=False)[1] == "clear"


def test_the_busiest_gpu_decides_and_unreadable_values_are_ignored():
    assert busiest([{"utilization_gpu": 0}, {"utilization_gpu": 40}]) == 40
    assert busiest([{"utilization_gpu": None}, {"utilization_gpu": True}]) is None
    assert busiest([]) is None


def test_policies_per_profile_star_for_the_rest_and_exemptions():
    policies = parse_policies(
        {
            "*": {"idle_after": 3600, "warn_for": 600},
            "train": {"idle_after": 7200, "warn_for": 900, "threshold": 10},
            "demo": None,
        }
    )
    args = ([], ["staff"], ["interns"])
    assert policy_for(policies, "train", "ann", [], [], []) == (policies["train"], True)
    assert policy_for(policies, "other", "ann", [], [], [])[0].idle_after == 3600
    assert policy_for(policies, "demo", "ann", [], [], []) == (UNRECLAIMED, False)
    assert policy_for(policies, "train", "staff", [], *args[1:]) == (policies["train"], False)
    assert policy_for(policies, "train", "ann", ["interns"], *args[1:])[1] is False
    assert policy_for({}, "train", "ann", [], [], []) == (UNRECLAIMED, False)


@pytest.mark.parametrize(
    ("value", "sentence"),
    [
        ({"*": {"warn_for": 5}}, "needs idle_after"),
        ({"*": {"idle_after": 0, "warn_for": 5}}, "must be a positive number"),
        ({"*": {"idle_after": "1h", "warn_for": 5}}, "must be a positive number"),
        ({"*": {"idle_after": 5, "warn_for": 5, "threshold": 150}}, "percentage"),
        ({"*": {"idle_after": 5, "warn_for": 5, "grace": 1}}, "unknown keys ['grace']"),
        ({"*": 3600}, "must be a dict"),
    ],
)
def test_a_bad_policy_is_a_sentence_naming_it(value, sentence):
    with pytest.raises(ValueError) as raised:
        parse_policies(value)
    assert sentence in str(raised.value) and "GpuReclaim.policies['*']" in str(raised.value)
