"""The line for busy GPUs across hub restarts: whose waiting start to begin again.

A waiting start lives in the hub process and marks its place alive at every look
(`LineStore.touch`). After a hub restart no start looks after the places kept in the file:
the operations service starts each of them again, with the options it was given, so it
takes up its place (its time of joining is kept). A place whose user now has that server
running (started some other way) is given up. Pure: `line_actions`; the service does the
I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..gpu.waiting_line import Waiter

# A start looks every second; one silent this long is gone (its hub stopped or restarted).
STALE_AFTER = 15.0


@dataclass(frozen=True)
class LineActions:
    restart: tuple[Waiter, ...] = ()  # start again with their options
    drop: tuple[Waiter, ...] = ()  # their server runs: they are no longer waiting


def server_name(waiter: Waiter) -> str:
    """The server of a place: "" for the default one, else the name after the user's."""
    return waiter.server_key.partition("/")[2]


def line_actions(
    waiters: Iterable[Waiter],
    seen: Mapping[str, float | None],
    servers: Mapping[str, Mapping[str, dict]],
    now: float,
) -> LineActions:
    """What to do about each place, from the users' servers (user -> name -> server model,
    as the hub's API lists active ones) and when each waiting start last looked."""
    restart, drop = [], []
    for w in waiters:
        last = seen.get(w.user)
        if last is not None and now - last <= STALE_AFTER:
            continue  # its start is looking after it (a stop in progress may read "ready")
        server = servers.get(w.user, {}).get(server_name(w))
        if server is None:
            restart.append(w)
        elif server.get("ready"):
            drop.append(w)
        # pending: a start is under way: nothing to do
    return LineActions(tuple(restart), tuple(drop))
