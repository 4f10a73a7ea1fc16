"""The line for busy GPUs: who waits for which pool, in what order, and who starts next.

Pure: no hub, no Docker, no clock (times are passed in). The hub keeps the line durable
and starts the first waiter whose request fits when GPUs free; this module decides.

The rules, in one place:

- One place per user: joining again replaces that user's place (their newest choice) and
  keeps their time of joining, so a user cannot hold two places or lose theirs by asking
  again.
- A pool is a kind of GPU (the profile's pool: same model, same placement). Waiters of
  one pool are served in order of joining; with group shares set, a waiter whose group
  holds more than its share goes behind every waiter whose groups hold less (then by
  time of joining).
- No one jumps the head of the line: when the head needs two GPUs and one is free, the
  one-GPU waiters behind it wait too. A request for several GPUs is therefore never
  starved by a stream of smaller ones; the cost is a GPU left free until the head fits,
  which the estimate on the pending page states.
- A place expires after `max_wait` seconds (the user closed the browser and never came
  back); the user can leave at any time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Waiter:
    """One user's place in a pool's line."""

    user: str
    server_key: str
    pool: str
    gpus: int
    joined: float  # seconds since the epoch
    groups: tuple[str, ...] = ()
    options: dict = field(default_factory=dict, compare=False)  # validated user_options


class LineError(ValueError):
    """A join the line refuses; the message is for the user."""


class WaitingLine:
    """The waiters of every pool, in joining order."""

    def __init__(self, waiters: Iterable[Waiter] = ()) -> None:
        self._waiters: dict[str, Waiter] = {}
        for w in sorted(waiters, key=lambda w: w.joined):
            self._waiters[w.user] = w

    @property
    def waiters(self) -> tuple[Waiter, ...]:
        return tuple(sorted(self._waiters.values(), key=lambda w: (w.joined, w.user)))

    def join(self, waiter: Waiter) -> Waiter:
        """Take (or renew) the user's one place; their first time of joining is kept."""
        if waiter.gpus < 1:
            raise LineError("Only a request for GPUs can wait for one.")
        earlier = self._waiters.get(waiter.user)
        if earlier is not None:
            waiter = replace(waiter, joined=earlier.joined)
        self._waiters[waiter.user] = waiter
        return waiter

    def leave(self, user: str) -> Waiter | None:
        """The user's place, removed (None when they had none)."""
        return self._waiters.pop(user, None)

    def place_of(self, user: str) -> Waiter | None:
        return self._waiters.get(user)

    def order(
        self,
        pool: str,
        held_by_group: Mapping[str, int] | None = None,
        shares: Mapping[str, int] | None = None,
    ) -> list[Waiter]:
        """The pool's waiters in serving order (see the module's rules)."""
        waiters = [w for w in self.waiters if w.pool == pool]
        if not shares:
            return waiters
        held = held_by_group or {}

        def over_share(w: Waiter) -> bool:
            limits = [(g, shares[g]) for g in w.groups if g in shares]
            return bool(limits) and all(held.get(g, 0) > share for g, share in limits)

        return sorted(waiters, key=lambda w: (over_share(w), w.joined, w.user))

    def position(
        self,
        user: str,
        held_by_group: Mapping[str, int] | None = None,
        shares: Mapping[str, int] | None = None,
    ) -> int | None:
        """1 for the head of the user's pool's line; None when the user is not waiting."""
        waiter = self._waiters.get(user)
        if waiter is None:
            return None
        line = self.order(waiter.pool, held_by_group, shares)
        return [w.user for w in line].index(user) + 1

    def next_to_start(
        self,
        pool: str,
        free: int,
        held_by_group: Mapping[str, int] | None = None,
        shares: Mapping[str, int] | None = None,
    ) -> Waiter | None:
        """The head of the pool's line when `free` GPUs are enough for it, else None."""
        line = self.order(pool, held_by_group, shares)
        if line and line[0].gpus <= free:
            return line[0]
        return None

    def expired(self, now: float, max_wait: float) -> list[Waiter]:
        """Waiters whose place is older than `max_wait` seconds (they are not removed)."""
        return [w for w in self.waiters if now - w.joined > max_wait]


@dataclass(frozen=True)
class HeldGpu:
    """What is known of when one held GPU of a pool frees."""

    since: float | None  # when it was given (None: before this hub process started)
    reclaim_at: float | None = None  # the idle reclaim's stop time, when a warning stands


@dataclass(frozen=True)
class Estimate:
    """When the user's turn may come, and the sentence that says why (or that none can)."""

    seconds: float | None
    reason: str


def _clock(t: float) -> str:
    # Hours and minutes in UTC: enough for "about 12 min: ... reclaimed at 14:05 UTC".
    return time.strftime("%H:%M UTC", time.gmtime(t))


def estimate(
    needed: int,
    held: Iterable[HeldGpu],
    now: float,
    recent_holds: Iterable[float] = (),
) -> Estimate:
    """When `needed` GPUs (the user's own and those of everyone ahead) may be free.

    Each held GPU frees at the earliest of its idle reclaim and (as a guess, while still
    ahead) its start plus the pool's median recent holding time; the estimate is the
    `needed`-th of those times. No estimate when fewer than `needed` held GPUs have any.
    (There is no maximum holding time to count: the hub has no such setting.)
    """
    holds = sorted(h for h in recent_holds if h > 0)
    typical = holds[len(holds) // 2] if holds else None
    frees: list[tuple[float, str]] = []
    for gpu in held:
        known = []
        if gpu.reclaim_at is not None:
            known.append((gpu.reclaim_at, "a GPU held by an idle server is reclaimed at {at}"))
        if typical is not None and gpu.since is not None and gpu.since + typical > now:
            # A GPU already held longer than usual says nothing about when it frees.
            known.append((gpu.since + typical, "GPUs of this kind are usually held {typical}"))
        if known:
            frees.append(min(known))
    frees.sort()
    if needed < 1 or len(frees) < needed:
        return Estimate(None, "no estimate: nothing says when enough GPUs free")
    at, why = frees[needed - 1]
    wait = max(0.0, at - now)
    reason = why.format(at=_clock(at), typical=_duration(typical or 0))
    return Estimate(wait, f"about {_duration(wait)}: {reason}")


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"
