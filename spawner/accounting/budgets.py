"""GPU-hour budgets per user or group and period: the admin's config read, how much of
each a user's start is counted against, and the sentences users read. Pure.

A budget is checked before a GPU server starts; it never stops one that runs. A group
budget counts everyone's holds in that group (the groups a holder was in when the hold
started), so one member's start can be refused by the others' use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .holds import Hold
from .periods import PERIODS, describe_reset, period_bounds

FIELDS = ("user", "group", "gpu_hours", "period", "warn_at", "hard")
LEVELS = ("over", "warn", "ok")  # the order states are listed in
_WHEN = {"day": "today", "week": "this week", "month": "this month"}


@dataclass(frozen=True)
class Budget:
    scope: str  # "user" or "group"
    name: str
    gpu_hours: float
    period: str  # one of PERIODS
    warn_at: float = 0.8
    hard: bool = True  # over a hard budget new GPU servers are refused; a soft one warns


def _number(value: object) -> float | None:
    # bool is an int to Python, but `gpu_hours: true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _parse_one(item: object, where: str) -> Budget:
    if not isinstance(item, dict):
        raise ValueError(f'{where} must be a mapping like {{"group": "vision", "gpu_hours": 100}}.')
    unknown = [k for k in item if k not in FIELDS]
    if unknown:
        raise ValueError(
            f"{where}: unknown field {unknown[0]!r}; the fields are user, group, gpu_hours, "
            "period, warn_at and hard."
        )
    scopes = [s for s in ("user", "group") if s in item]
    if len(scopes) != 1:
        raise ValueError(f"{where}: give exactly one of 'user' or 'group'.")
    scope = scopes[0]
    name = item[scope]
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: {scope!r} must be a {scope} name.")
    hours = _number(item.get("gpu_hours"))
    if hours is None or hours <= 0:
        raise ValueError(f"{where}: 'gpu_hours' must be a number above 0.")
    period = item.get("period", "month")
    if period not in PERIODS:
        raise ValueError(f"{where}: 'period' must be day, week or month.")
    warn_at = _number(item.get("warn_at", 0.8))
    if warn_at is None or not 0 < warn_at <= 1:
        raise ValueError(f"{where}: 'warn_at' must be a number above 0 and at most 1.")
    hard = item.get("hard", True)
    if not isinstance(hard, bool):
        raise ValueError(f"{where}: 'hard' must be true or false.")
    return Budget(scope, name, hours, period, warn_at, hard)


def parse_budgets(value: list[dict]) -> list[Budget]:
    """The admin's budgets; ValueError with a sentence naming the budget (1-based) and field."""
    if not isinstance(value, (list, tuple)):
        raise ValueError("Budgets must be a list, e.g. [{'group': 'vision', 'gpu_hours': 100}].")
    return [_parse_one(item, f"budget {i}") for i, item in enumerate(value, start=1)]


def _limit(hours: float) -> str:
    """The limit as the admin wrote it: 100, not 100.0."""
    return str(int(hours)) if hours.is_integer() else str(hours)


@dataclass(frozen=True)
class BudgetState:
    budget: Budget
    used_hours: float
    level: str  # "ok", "warn" or "over"

    def sentence(self, now: float) -> str:
        """What the user reads about this budget now."""
        b = self.budget
        when = _WHEN[b.period]
        used, limit = f"{self.used_hours:.1f}", _limit(b.gpu_hours)
        if b.scope == "user":
            head = f"You have used {used} of your {limit} GPU-hours {when}"
            over = " You are over your budget."
        else:
            head = f"Your group {b.name} has used {used} of its {limit} GPU-hours {when}"
            over = " It is over its budget."
        if self.level == "over" and b.hard:
            reset = describe_reset(b.period, now)
            return f"{head}; new GPU servers are refused until it resets {reset}."
        # Whole percent, rounded down so "100%" means used up; to 6 places first, so that
        # 57 of 100 (56.999... in floating point) still reads 57%.
        percent = math.floor(round(self.used_hours / b.gpu_hours * 100, 6))
        text = f"{head} ({percent}%)."
        return text + over if self.level == "over" else text


def _level(budget: Budget, used_hours: float) -> str:
    if used_hours >= budget.gpu_hours:
        return "over"
    if used_hours >= budget.warn_at * budget.gpu_hours:
        return "warn"
    return "ok"


def budget_states(
    budgets: Iterable[Budget],
    user: str,
    groups: Iterable[str],
    holds: Iterable[Hold],
    now: float,
) -> list[BudgetState]:
    """The budgets that apply to `user` (theirs and those of their current `groups`), each
    with its GPU-hours used in its current period: over first, then warn, then ok.

    A user budget counts that user's holds; a group budget counts every hold whose holder
    was in the group when it started, whoever it was.
    """
    mine = set(groups)
    holds = list(holds)  # read once per budget
    states = []
    for b in budgets:
        if b.scope == "user":
            if b.name != user:
                continue
            counted = [h for h in holds if h.user == b.name]
        else:
            if b.name not in mine:
                continue
            counted = [h for h in holds if b.name in h.groups]
        since, until = period_bounds(b.period, now)
        used = sum(h.overlap(since, until, now) for h in counted) / 3600
        states.append(BudgetState(b, used, _level(b, used)))
    states.sort(key=lambda s: LEVELS.index(s.level))  # stable: config order within a level
    return states


def refusal(states: Iterable[BudgetState], now: float) -> str | None:
    """The sentence of the first hard budget that is over, or None to let the start go on."""
    for state in states:
        if state.level == "over" and state.budget.hard:
            return state.sentence(now)
    return None


def warnings(states: Iterable[BudgetState], now: float) -> list[str]:
    """Sentences of the budgets near their limit, or over a soft one."""
    return [
        s.sentence(now)
        for s in states
        if s.level == "warn" or (s.level == "over" and not s.budget.hard)
    ]
