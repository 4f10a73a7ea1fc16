"""GPU-hour budgets: periods in UTC, the admin's config read, use counted, sentences users read."""

from __future__ import annotations

from calendar import timegm

import pytest

from spawner.accounting.budgets import (
    Budget,
    BudgetState,
    budget_states,
    parse_budgets,
    refusal,
    warnings,
)
from spawner.accounting.holds import Hold
from spawner.accounting.periods import PERIODS, describe_reset, period_bounds

HOUR = 3600.0


def utc(*when: int) -> float:
    """Epoch seconds of a UTC date and time: utc(2026, 12, 6, 8) is 6 December 08:00."""
    return float(timegm((*when, *(0,) * (6 - len(when)), 0, 0, 0)))


# Thursday 31 December 2026, 15:30 UTC: the last day of a week's Thursday, a month, a year.
NOW = utc(2026, 12, 31, 15, 30)


def hold(user="ann", groups=("vision",), start=utc(2026, 12, 2, 8), hours=1.0, end=...) -> Hold:
    end = start + hours * HOUR if end is ... else end
    return Hold(user, tuple(groups), "gpu", user, "0", "H200", start, end)


# Periods.


def test_the_periods_are_day_week_and_month():
    assert PERIODS == ("day", "week", "month")


def test_a_day_runs_from_midnight_to_midnight_utc():
    assert period_bounds("day", NOW) == (utc(2026, 12, 31), utc(2027, 1, 1))


def test_a_moment_at_midnight_starts_its_day():
    assert period_bounds("day", utc(2026, 12, 7)) == (utc(2026, 12, 7), utc(2026, 12, 8))


def test_a_week_starts_on_monday():
    # Thursday 31 December is in the week of Monday 28 December.
    assert period_bounds("week", NOW) == (utc(2026, 12, 28), utc(2027, 1, 4))


def test_a_sunday_belongs_to_the_week_before_it():
    sunday = utc(2026, 12, 6, 23, 59)
    assert period_bounds("week", sunday) == (utc(2026, 11, 30), utc(2026, 12, 7))


def test_a_month_starts_on_the_first():
    assert period_bounds("month", utc(2026, 11, 15, 8)) == (utc(2026, 11, 1), utc(2026, 12, 1))


def test_december_ends_on_the_first_of_january():
    assert period_bounds("month", NOW) == (utc(2026, 12, 1), utc(2027, 1, 1))


def test_february_of_a_leap_year_has_29_days():
    start, end = period_bounds("month", utc(2028, 2, 10))
    assert (end - start) / 86400 == 29


def test_an_unknown_period_is_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match="The period must be day, week or month, not 'year'."):
        period_bounds("year", NOW)


def test_reset_words_for_each_period():
    assert describe_reset("day", NOW) == "tomorrow at 00:00 UTC"
    assert describe_reset("week", utc(2026, 12, 2)) == "on Monday 7 December at 00:00 UTC"
    assert describe_reset("week", NOW) == "on Monday 4 January at 00:00 UTC"
    assert describe_reset("month", NOW) == "on 1 January at 00:00 UTC"
    assert describe_reset("month", utc(2026, 2, 3)) == "on 1 March at 00:00 UTC"


# The admin's config.


def test_budgets_are_read_with_their_defaults():
    budgets = parse_budgets(
        [
            {"group": "vision", "gpu_hours": 100},
            {"user": "ann", "gpu_hours": 12.5, "period": "week", "warn_at": 0.5, "hard": False},
        ]
    )
    assert budgets == [
        Budget("group", "vision", 100.0, "month", 0.8, True),
        Budget("user", "ann", 12.5, "week", 0.5, False),
    ]


def test_no_budgets_is_an_empty_list():
    assert parse_budgets([]) == []


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"gpu_hours": 10}, "budget 2: give exactly one of 'user' or 'group'."),
        (
            {"user": "ann", "group": "vision", "gpu_hours": 10},
            "budget 2: give exactly one of 'user' or 'group'.",
        ),
        ({"user": "", "gpu_hours": 10}, "budget 2: 'user' must be a user name."),
        ({"group": 7, "gpu_hours": 10}, "budget 2: 'group' must be a group name."),
        ({"user": "ann"}, "budget 2: 'gpu_hours' must be a number above 0."),
        ({"user": "ann", "gpu_hours": 0}, "budget 2: 'gpu_hours' must be a number above 0."),
        ({"user": "ann", "gpu_hours": -5}, "budget 2: 'gpu_hours' must be a number above 0."),
        ({"user": "ann", "gpu_hours": "10"}, "budget 2: 'gpu_hours' must be a number above 0."),
        ({"user": "ann", "gpu_hours": True}, "budget 2: 'gpu_hours' must be a number above 0."),
        (
            {"user": "ann", "gpu_hours": float("inf")},
            "budget 2: 'gpu_hours' must be a number above 0.",
        ),
        (
            {"user": "ann", "gpu_hours": 10, "period": "year"},
            "budget 2: 'period' must be day, week or month.",
        ),
        (
            {"user": "ann", "gpu_hours": 10, "warn_at": 0},
            "budget 2: 'warn_at' must be a number above 0 and at most 1.",
        ),
        (
            {"user": "ann", "gpu_hours": 10, "warn_at": 80},
            "budget 2: 'warn_at' must be a number above 0 and at most 1.",
        ),
        (
            {"user": "ann", "gpu_hours": 10, "hard": "yes"},
            "budget 2: 'hard' must be true or false.",
        ),
        (
            {"user": "ann", "gpu_hour": 10},
            "budget 2: unknown field 'gpu_hour'; the fields are user, group, gpu_hours, period, "
            "warn_at and hard.",
        ),
        (
            ["ann", 10],
            'budget 2 must be a mapping like {"group": "vision", "gpu_hours": 100}.',
        ),
    ],
)
def test_a_wrong_budget_is_refused_with_its_position_and_field(item, message):
    with pytest.raises(ValueError) as caught:
        parse_budgets([{"group": "vision", "gpu_hours": 100}, item])
    assert str(caught.value) == message


def test_budgets_that_are_not_a_list_are_refused():
    with pytest.raises(ValueError, match="Budgets must be a list"):
        parse_budgets({"group": "vision", "gpu_hours": 100})


def test_a_whole_warn_at_of_one_is_allowed():
    assert parse_budgets([{"user": "ann", "gpu_hours": 1, "warn_at": 1}])[0].warn_at == 1


# Sentences.

VISION = Budget("group", "vision", 100.0, "month")
ANN = Budget("user", "ann", 100.0, "month")


def test_a_group_near_its_budget_is_warned():
    state = BudgetState(VISION, 85.0, "warn")
    assert state.sentence(NOW) == (
        "Your group vision has used 85.0 of its 100 GPU-hours this month (85%)."
    )


def test_a_user_near_their_budget_is_warned():
    assert BudgetState(ANN, 85.0, "warn").sentence(NOW) == (
        "You have used 85.0 of your 100 GPU-hours this month (85%)."
    )


def test_the_period_is_named_in_words():
    day = Budget("user", "ann", 10.0, "day")
    week = Budget("user", "ann", 10.0, "week")
    assert BudgetState(day, 9.0, "warn").sentence(NOW) == (
        "You have used 9.0 of your 10 GPU-hours today (90%)."
    )
    assert BudgetState(week, 9.0, "warn").sentence(NOW) == (
        "You have used 9.0 of your 10 GPU-hours this week (90%)."
    )


def test_a_limit_with_a_fraction_is_printed_as_given():
    b = Budget("user", "ann", 12.5, "month")
    assert BudgetState(b, 11.0, "warn").sentence(NOW) == (
        "You have used 11.0 of your 12.5 GPU-hours this month (88%)."
    )


def test_the_percentage_is_not_lowered_by_float_rounding():
    # 0.57 * 100 is 56.99999999999999 in floating point.
    assert BudgetState(ANN, 57.0, "ok").sentence(NOW).endswith("(57%).")


def test_a_group_over_a_hard_budget_is_told_when_it_resets():
    assert BudgetState(VISION, 101.23, "over").sentence(NOW) == (
        "Your group vision has used 101.2 of its 100 GPU-hours this month; new GPU servers "
        "are refused until it resets on 1 January at 00:00 UTC."
    )


def test_a_user_over_a_hard_budget_is_told_when_it_resets():
    daily = Budget("user", "ann", 2.0, "day")
    assert BudgetState(daily, 2.04, "over").sentence(NOW) == (
        "You have used 2.0 of your 2 GPU-hours today; new GPU servers are refused until it "
        "resets tomorrow at 00:00 UTC."
    )


def test_a_group_over_a_soft_budget_is_only_told_so():
    soft = Budget("group", "vision", 100.0, "month", hard=False)
    assert BudgetState(soft, 101.2, "over").sentence(NOW) == (
        "Your group vision has used 101.2 of its 100 GPU-hours this month (101%). "
        "It is over its budget."
    )


def test_a_user_over_a_soft_budget_is_only_told_so():
    soft = Budget("user", "ann", 100.0, "month", hard=False)
    assert BudgetState(soft, 101.2, "over").sentence(NOW) == (
        "You have used 101.2 of your 100 GPU-hours this month (101%). You are over your budget."
    )


# Use counted against budgets.


def test_a_users_budget_counts_their_holds_in_the_period():
    budgets = [Budget("user", "ann", 10.0, "month")]
    holds = [hold("ann", hours=7), hold("ann", start=utc(2026, 12, 20), hours=1.5)]
    [state] = budget_states(budgets, "ann", [], holds, NOW)
    assert state.used_hours == pytest.approx(8.5)
    assert state.level == "warn"


def test_budgets_of_other_users_and_groups_do_not_apply():
    budgets = [Budget("user", "bob", 1.0, "month"), Budget("group", "nlp", 1.0, "month")]
    assert budget_states(budgets, "ann", ["vision"], [hold("ann", hours=5)], NOW) == []


def test_a_new_period_resets_the_use():
    budgets = [Budget("user", "ann", 10.0, "month")]
    last_month = [hold("ann", start=utc(2026, 11, 3), hours=50)]
    [state] = budget_states(budgets, "ann", [], last_month, NOW)
    assert state.used_hours == 0
    assert state.level == "ok"


def test_a_hold_across_the_start_of_the_period_counts_only_its_part_inside():
    budgets = [Budget("user", "ann", 10.0, "day")]
    holds = [hold("ann", start=utc(2026, 12, 30, 22), end=None)]  # open since yesterday 22:00
    [state] = budget_states(budgets, "ann", [], holds, NOW)
    assert state.used_hours == pytest.approx(15.5)
    assert state.level == "over"


def test_a_group_budget_counts_other_members_holds():
    budgets = [Budget("group", "vision", 10.0, "month")]
    holds = [hold("bob", hours=6), hold("cat", hours=4), hold("dan", groups=("nlp",), hours=9)]
    [state] = budget_states(budgets, "ann", ["vision"], holds, NOW)
    assert state.used_hours == pytest.approx(10.0)
    assert state.level == "over"


def test_a_group_budget_counts_holds_by_the_groups_at_the_time():
    budgets = [Budget("group", "vision", 10.0, "month")]
    # Bob has left vision since; his hold from when he was in it still counts.
    holds = [hold("bob", groups=("vision",), hours=3), hold("ann", groups=("nlp",), hours=4)]
    [state] = budget_states(budgets, "ann", ["vision"], holds, NOW)
    assert state.used_hours == pytest.approx(3.0)


def test_states_are_listed_over_then_warn_then_ok():
    budgets = [
        Budget("user", "ann", 100.0, "month"),  # ok
        Budget("group", "vision", 10.0, "month"),  # warn
        Budget("group", "nlp", 5.0, "week"),  # over
    ]
    holds = [hold("ann", groups=("vision", "nlp"), start=utc(2026, 12, 29), hours=8)]
    states = budget_states(budgets, "ann", iter(["vision", "nlp"]), iter(holds), NOW)
    assert [(s.budget.name, s.level) for s in states] == [
        ("nlp", "over"),
        ("vision", "warn"),
        ("ann", "ok"),
    ]


def test_use_at_exactly_warn_at_warns():
    budgets = [Budget("user", "ann", 10.0, "month", warn_at=0.5)]
    [state] = budget_states(budgets, "ann", [], [hold("ann", hours=5)], NOW)
    assert state.level == "warn"


# Refusal and warnings.


def test_refusal_picks_the_hard_budget_that_is_over():
    soft = Budget("user", "ann", 1.0, "month", hard=False)
    hard = Budget("group", "vision", 5.0, "month")
    states = budget_states([soft, hard], "ann", ["vision"], [hold("ann", hours=6)], NOW)
    assert refusal(states, NOW) == (
        "Your group vision has used 6.0 of its 5 GPU-hours this month; new GPU servers are "
        "refused until it resets on 1 January at 00:00 UTC."
    )
    assert warnings(states, NOW) == [
        "You have used 6.0 of your 1 GPU-hours this month (600%). You are over your budget."
    ]


def test_no_refusal_when_only_soft_budgets_are_over():
    soft = Budget("user", "ann", 1.0, "month", hard=False)
    states = budget_states([soft], "ann", [], [hold("ann", hours=6)], NOW)
    assert refusal(states, NOW) is None


def test_a_budget_near_its_limit_warns_without_refusing():
    states = budget_states([ANN], "ann", [], [hold("ann", hours=90)], NOW)
    assert refusal(states, NOW) is None
    assert warnings(states, NOW) == ["You have used 90.0 of your 100 GPU-hours this month (90%)."]


def test_budgets_with_room_say_nothing():
    states = budget_states([ANN], "ann", [], [hold("ann", hours=10)], NOW)
    assert refusal(states, NOW) is None
    assert warnings(states, NOW) == []
