"""One GPU hold: one GPU given to one server, from its start to its end. Pure data.

A server with two GPUs makes two holds. `start` is the time the GPUs were given (the
container's `org.cudaspawner.since` label, so a restarted hub continues the same hold and
never counts it twice); `end` is None while the hold is open. `seen` is the last time the
hold was known to be alive (the hub's own start, and every look of the operations service):
a hold whose server vanished while the hub was down is closed at `seen`, never later.
`idle_seconds` is the time the GPU spent below the reclaim threshold, as the operations
service saw it look by look.
"""

from __future__ import annotations

from dataclasses import dataclass

# Why a hold ended.
STOPPED = "stopped"  # the server was stopped (its user, an admin, the API)
RECLAIMED = "reclaimed"  # the idle-GPU reclaim stopped it
EXITED = "exited"  # ended without a stop through the hub (by itself, or while it was down)
OVER_BUDGET = "over budget"  # stopped over a hard budget (GpuUsage.stop_over_budget)
REASONS = (STOPPED, RECLAIMED, EXITED, OVER_BUDGET)


@dataclass(frozen=True)
class Hold:
    user: str
    groups: tuple[str, ...]  # the user's groups when the hold started
    profile: str
    server: str  # the server key: "user" or "user/name"
    gpu: str  # the GPU's id in the hub's inventory (index, UUID or MIG id)
    model: str
    start: float  # seconds since the epoch
    end: float | None = None  # None: still held
    seen: float | None = None  # last time known alive
    idle_seconds: float = 0.0
    reason: str | None = None  # one of REASONS once ended
    id: int | None = None  # the store's row id

    def held_seconds(self, now: float) -> float:
        """Seconds held up to `end` (or `now` while open)."""
        until = self.end if self.end is not None else now
        return max(0.0, until - self.start)

    def overlap(self, since: float, until: float, now: float) -> float:
        """Seconds of this hold inside [since, until)."""
        end = self.end if self.end is not None else now
        return max(0.0, min(end, until) - max(self.start, since))
