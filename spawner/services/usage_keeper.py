"""The operations service's side of the GPU-hours record (issue 26).

The hub opens a server's holds when it starts and closes them when it stops (exact
times). Each look of the service adds what only it sees: that each GPU server is still
alive (`seen`), how long its GPUs were idle (below the reclaim threshold, look by look),
"reclaimed" as the reason before it stops a server, and the holds the hub could not close:
a server that vanished while the hub was down is closed at the last time it was seen
alive, never later. A server the hub has not recorded (its hub lost the database for a
moment) is recorded from its labels; the store's unique (server, GPU, start) makes the
two one hold.

`holds_of` and `stale` are pure; `UsageKeeper` does the store's I/O off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from ..accounting.budgets import Budget, budget_states, refusal, warnings
from ..accounting.holds import EXITED, OVER_BUDGET, RECLAIMED, Hold
from ..accounting.periods import period_bounds
from ..accounting.usage_store import UsageStore
from .fleet import GpuServer

# A hold of a server missing from the looks is closed once nobody saw it for this long:
# a server the hub has just started is not in the hub's list of ready servers yet.
GRACE_LOOKS = 3
GRACE_MIN_SECONDS = 20.0


def holds_of(server: GpuServer, models: Mapping[str, str], now: float) -> list[Hold]:
    """The holds a server's labels describe (one per GPU), seen now."""
    if server.since is None:
        return []
    return [
        Hold(
            user=server.user,
            groups=server.groups,
            profile=server.profile,
            server=server.key,
            gpu=gpu,
            model=models.get(gpu, ""),
            start=server.since.timestamp(),
            seen=now,
        )
        for gpu in server.gpu_ids
    ]


def stale(
    open_holds: Iterable[Hold], alive: set[str], now: float, grace: float
) -> dict[str, float]:
    """server key -> when to close its open holds: servers not alive and unseen for `grace`
    seconds, at the last time they were seen (or their start)."""
    ends: dict[str, float] = {}
    for h in open_holds:
        last = h.seen if h.seen is not None else h.start
        if h.server not in alive and now - last > grace:
            ends[h.server] = max(ends.get(h.server, last), last)
    return ends


class UsageKeeper:
    def __init__(
        self,
        store: UsageStore,
        interval: float,
        models: Mapping[str, str],
        log: logging.Logger,
        budgets: list[Budget] | None = None,
        stop_over_budget: bool = False,
    ) -> None:
        self.store = store
        self.all_budgets = list(budgets or ())
        self.budgets = [b for b in self.all_budgets if b.scope == "group"]
        self._sent: dict[str, dict] = {}  # server key -> the figures it was last sent
        self.stop_over_budget = stop_over_budget
        self.over: dict[str, str] = {}  # server key -> the hard budget's sentence, at this look
        # For /hub/metrics (through the service's snapshot): set at every look.
        self.figures: dict = {}
        self.grace = max(GRACE_MIN_SECONDS, GRACE_LOOKS * interval)
        self.models = dict(models)
        self.log = log
        self._last: dict[str, float] = {}  # server key -> its last look's time
        self.idle: dict[str, bool] = {}  # server key -> idle at this look (set by the service)

    async def after_look(self, servers: list[GpuServer], now: float) -> None:
        """Record one look: the servers alive, their idle time, the holds to close."""
        try:
            await asyncio.to_thread(self._record, servers, now)
        except Exception as e:  # the record is kept; the next look tries again
            self.log.warning("Could not update the GPU usage record: %s", e)

    def _record(self, servers: list[GpuServer], now: float) -> None:
        for server in servers:
            for hold in holds_of(server, self.models, now):
                self.store.open_hold(hold)
            last = self._last.get(server.key)
            if last is not None and self.idle.get(server.key):
                # Idle since the last look (at most two looks' worth: a service that was
                # away does not count its absence as idle time).
                self.store.add_idle(server.key, min(now - last, 2 * self.grace / GRACE_LOOKS))
            self._last[server.key] = now
        alive = {s.key for s in servers}
        self.store.seen(alive, now)
        for key, end in stale(self.store.open_holds(), alive, now, self.grace).items():
            self.store.close_server(key, end, EXITED)
            self.log.info("GPU holds of %s closed at its last look (it ended unseen)", key)
        self._last = {k: v for k, v in self._last.items() if k in alive}
        self.idle = {k: v for k, v in self.idle.items() if k in alive}
        self.figures = usage_figures(self.store, self.budgets, now)

    async def owners_figures(self, servers: list[GpuServer], now: float) -> dict[str, dict]:
        """server key -> its owner's figures for the GPU panel, only where they changed
        since that server was last sent them."""
        try:
            figures = await asyncio.to_thread(self._owners_figures, servers, now)
        except Exception as e:
            self.log.warning("Could not read the GPU usage record for the panels: %s", e)
            return {}
        changed = {k: v for k, v in figures.items() if self._sent.get(k) != v}
        return changed

    def sent(self, server_key: str, figures: dict) -> None:
        self._sent[server_key] = figures

    def _owners_figures(self, servers: list[GpuServer], now: float) -> dict[str, dict]:
        if not servers:
            return {}
        periods = ("week", "month", *(b.period for b in self.all_budgets))
        since = min(period_bounds(p, now)[0] for p in periods)
        holds = self.store.holds_between(since, now + 1)
        week, month = period_bounds("week", now), period_bounds("month", now)
        figures = {}
        self.over = {}
        for server in servers:
            mine = [h for h in holds if h.user == server.user]
            states = budget_states(self.all_budgets, server.user, server.groups, holds, now)
            refused = refusal(states, now)
            if refused and self.stop_over_budget:
                self.over[server.key] = refused
            said = [s for s in (refused,) if s] + warnings(states, now)
            figures[server.key] = {
                # Hundredths of an hour: a panel need not be told of every second.
                "week_hours": round(sum(h.overlap(*week, now) for h in mine) / 3600, 2),
                "month_hours": round(sum(h.overlap(*month, now) for h in mine) / 3600, 2),
                "warnings": said[:5],
            }
        return figures

    async def stopping_over_budget(self, server_key: str) -> None:
        """A server is about to be stopped over a hard budget: its holds end so."""
        try:
            await asyncio.to_thread(self.store.mark_reason, server_key, OVER_BUDGET)
        except Exception as e:
            self.log.warning("Could not mark %s's GPU holds as over budget: %s", server_key, e)

    async def reclaiming(self, server_key: str) -> None:
        """The reclaim is about to stop this server: its holds end "reclaimed"."""
        try:
            await asyncio.to_thread(self.store.mark_reason, server_key, RECLAIMED)
        except Exception as e:
            self.log.warning("Could not mark %s's GPU holds as reclaimed: %s", server_key, e)


def usage_figures(store: UsageStore, group_budgets: list[Budget], now: float) -> dict:
    """GPU-seconds held and idle per group and profile (all time; a holder in two groups
    counts in both, one in none under ""), and each group budget's share used this period."""
    held: dict[str, dict[str, list[float]]] = {}
    for groups, profile, seconds, idle in store.totals(now):
        for group in groups or ("",):
            cell = held.setdefault(group, {}).setdefault(profile, [0.0, 0.0])
            cell[0] += seconds
            cell[1] += idle
    used = {}
    if group_budgets:
        since = min(period_bounds(b.period, now)[0] for b in group_budgets)
        holds = store.holds_between(since, now + 1)
        for budget in group_budgets:
            # The group's own state, whoever asks: a member's view of it.
            (state,) = budget_states([budget], "", [budget.name], holds, now)
            used[budget.name] = state.used_hours / budget.gpu_hours
    return {"gpu_seconds": held, "budget_used": used}
