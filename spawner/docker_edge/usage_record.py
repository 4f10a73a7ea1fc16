"""The hub's side of the GPU-hours record (issue 26), a mixin of CUDADockerSpawner.

A GPU server's holds are opened when it has started (one per GPU, from the `gpus-since`
label's time, so a restarted hub or the operations service recording the same hold finds
it there already) and closed when the hub stops it or finds it ended. The operations
service adds what only it sees: idle time, "still alive", a reclaim's reason, and holds
whose server vanished while the hub was down (`services.usage_keeper`).

Before a GPU start, the user's budgets are checked: over a hard one, the start is refused
with a sentence; near one, the spawn page says so. The record never stops a start: a
database that cannot be reached is logged and the start goes on, unbudgeted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import ClassVar

from markupsafe import escape
from sqlalchemy.engine import make_url

from ..accounting.budgets import budget_states, refusal, warnings
from ..accounting.holds import EXITED, Hold
from ..accounting.periods import period_bounds
from ..accounting.settings import GpuUsage
from ..accounting.usage_store import UsageStore
from ..engine import failures
from ..gpu.labels import SINCE_LABEL, parse_since
from ..services.hub_metrics import record_refusal
from .container_spec import EngineStart


class RecordsUsage:
    """`_record_start`, `_record_end`, `_check_budgets` and `_usage_note` for the spawner."""

    _stores: ClassVar[dict[str, UsageStore]] = {}  # one engine per URL per hub process

    def _usage_settings(self) -> GpuUsage:
        return GpuUsage(config=self.config)

    async def _usage(self, create: bool = False) -> UsageStore | None:
        """The record (None when off). Only a start creates it: with no record yet there
        is nothing to close, count or read. Opened off the event loop (it may create the
        table on a database server)."""
        settings = self._usage_settings()
        if not settings.enabled:
            return None
        url = settings.url(self._data_directory())
        if url not in self._stores:
            local = make_url(url)
            if local.get_backend_name() == "sqlite" and not create:
                if not await asyncio.to_thread(Path(local.database).exists):
                    return None
            self._stores[url] = await asyncio.to_thread(UsageStore, url)
        return self._stores[url]

    async def _record_start(self, start: EngineStart) -> None:
        """Open a hold per GPU of a server that has started."""
        labels = getattr(start, "create_kwargs", {}).get("labels") or {}
        since = parse_since(labels.get(SINCE_LABEL, ""))
        if not start.gpu_ids or since is None:
            return
        store = await self._usage(create=True)
        if store is None:
            return
        models = {g.id: g.name for g in (await self.gpu_host()).inventory}
        now = time.time()
        holds = [
            Hold(
                user=self.user.name,
                groups=tuple(self._group_names()),
                profile=start.profile,
                server=self.server_key,
                gpu=gpu,
                model=models.get(gpu, ""),
                start=since.timestamp(),
                seen=now,
            )
            for gpu in start.gpu_ids
        ]
        try:
            await asyncio.to_thread(lambda: [store.open_hold(h) for h in holds])
        except Exception as e:  # the record must never fail a start
            self.log.error("Could not record the GPU holds of %s: %s", self._log_name, e)

    async def _record_end(self, reason: str) -> None:
        """Close this server's open holds (a reason the reclaim marked first is kept): at
        once for a stop; for a server found ended, at the last time it was seen alive (it
        may have ended while the hub was down: that time was not held)."""
        store = await self._usage()
        if store is None:
            return

        def close() -> None:
            end = time.time()
            if reason == EXITED:
                seen = [
                    h.seen or h.start for h in store.open_holds() if h.server == self.server_key
                ]
                end = min(end, max(seen, default=end))
            store.close_server(self.server_key, end, reason)

        try:
            await asyncio.to_thread(close)
        except Exception as e:
            self.log.error("Could not close the GPU holds of %s: %s", self._log_name, e)

    async def _budget_sentences(self) -> tuple[str | None, list[str]]:
        """(the refusal of a hard budget that is over, the warnings) for this user now."""
        budgets = self._usage_settings().parsed_budgets()
        store = await self._usage() if budgets else None
        if store is None:
            return None, []
        now = time.time()
        # Holds of the longest period any budget counts (they start at or after its start).
        since = min(period_bounds(b.period, now)[0] for b in budgets)
        try:
            holds = await asyncio.to_thread(store.holds_between, since, now + 1)
        except Exception as e:
            self.log.error("Could not read the GPU usage record for budgets: %s", e)
            return None, []
        states = budget_states(budgets, self.user.name, self._group_names(), holds, now)
        return refusal(states, now), warnings(states, now)

    async def _check_budgets(self) -> None:
        """Refuse a GPU start over a hard budget (409, with what was used, the limit and
        when it resets); say a near or soft-exceeded budget on the spawn page."""
        refused, warned = await self._budget_sentences()
        if refused:
            record_refusal(
                "gpu_budget", user=self.user.name, server=self.server_key, message=refused
            )
            raise failures.user_error(409, refused)
        for sentence in warned:
            self._progress.add(10, sentence)

    async def _usage_note(self) -> tuple[dict[str, float], list[str]]:
        """The user's own GPU-hours this week and this month, and the budget warnings, for
        the spawn form."""
        store = await self._usage()
        if store is None or not (await self.gpu_host()).total:
            return {}, []  # no GPUs here: nothing to count
        now = time.time()
        try:
            since = min(period_bounds(p, now)[0] for p in ("week", "month"))
            holds = await asyncio.to_thread(store.holds_between, since, now + 1)
        except Exception as e:
            self.log.error("Could not read the GPU usage record for the form: %s", e)
            return {}, []
        mine = [h for h in holds if h.user == self.user.name]
        figures = {}
        for period in ("week", "month"):
            start, end = period_bounds(period, now)
            figures[period] = sum(h.overlap(start, end, now) for h in mine) / 3600
        _, warned = await self._budget_sentences()
        return figures, warned


def usage_note_html(figures: dict[str, float], warned: list[str]) -> str:
    """The user's own GPU-hours and budget warnings above the spawn form ("" for none)."""
    if not figures and not warned:
        return ""
    parts = []
    if figures:
        parts.append(
            '<p class="cudaspawner-usage" data-role="usage">Your GPU use: '
            f"{figures.get('week', 0):.2f} GPU-hours this week, "
            f"{figures.get('month', 0):.2f} this month.</p>"
        )
    for sentence in warned:
        parts.append(
            '<div class="alert alert-warning" role="alert" data-role="budget">'
            f"{escape(sentence)}</div>"
        )
    return "\n".join(parts) + "\n"
