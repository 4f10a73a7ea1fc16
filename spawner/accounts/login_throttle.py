"""Failed logins slow down one (user name, source address) pair, never the account for everyone.

The login handler asks `LoginThrottle` how long a pair must wait and tells it each outcome;
`client_address` says which address a login came from, trusting only the hub's own proxy for
`X-Forwarded-For`. Pure apart from `is_host_address`, which binds a socket to find out.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from tornado import web


@dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """A growing delay after failed logins, per (user name, source address).

    The first `free_failures` failures cost nothing; after that the pair must wait
    `base_delay` seconds before its next try, doubling with each further failure up to
    `max_delay`. A success clears the pair; a pair is forgotten `max(max_delay, 1 h)`
    after its last failure. Other sources of the same user are never slowed, so nobody
    can lock someone else out. Pure: the clock is injected.
    """

    def __init__(
        self,
        free_failures: int = 5,
        base_delay: float = 2.0,
        max_delay: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        self.free_failures = max(0, free_failures)
        self.base_delay = max(0.0, base_delay)
        self.max_delay = max(0.0, max_delay)
        self.clock = clock
        self.max_entries = max_entries
        self._failures: dict[tuple[str, str], _Failures] = {}

    @property
    def forget_after(self) -> float:
        return max(self.max_delay, 3600.0)

    def delay_after(self, failures: int) -> float:
        """Seconds a pair must wait after its `failures`-th consecutive failure."""
        over = failures - self.free_failures
        if over < 0:
            return 0.0
        return min(self.max_delay, self.base_delay * 2.0 ** min(over, 64))

    def wait(self, user: str, source: str) -> float:
        """Seconds before `user` may try again from `source` (0: now)."""
        rec = self._failures.get((user, source))
        if rec is None:
            return 0.0
        now = self.clock()
        if now - rec.last > self.forget_after:
            del self._failures[(user, source)]
            return 0.0
        return max(0.0, rec.last + self.delay_after(rec.count) - now)

    def failed(self, user: str, source: str) -> None:
        now = self.clock()
        key = (user, source)
        rec = self._failures.get(key)
        if rec is None or now - rec.last > self.forget_after:
            self._failures[key] = _Failures(1, now)
            self._prune(now)
        else:
            rec.count += 1
            rec.last = now

    def succeeded(self, user: str, source: str) -> None:
        self._failures.pop((user, source), None)

    def _prune(self, now: float) -> None:
        # Bounded memory whatever an attacker sends: drop expired pairs, then the oldest.
        if len(self._failures) <= self.max_entries:
            return
        for key in [k for k, r in self._failures.items() if now - r.last > self.forget_after]:
            del self._failures[key]
        while len(self._failures) > self.max_entries:
            del self._failures[min(self._failures, key=lambda k: self._failures[k].last)]


def client_address(
    handler: web.RequestHandler, is_local: Callable[[str], bool] | None = None
) -> str:
    """The address a login request came from, as seen by the hub's own proxy.

    The proxy (configurable-http-proxy, on this host) appends the peer it saw to
    X-Forwarded-For, so the last entry is trusted, but only when the request reached the
    hub from an address of this host. Anything else (a container calling the hub's port
    directly) is known by its own peer address: a client cannot pick its source by
    sending a header. Tornado's `remote_ip` is not used because it prefers X-Real-Ip,
    which the proxy passes through from the client unchanged.
    """
    request = handler.request
    context = getattr(request.connection, "context", None)
    address = getattr(context, "address", None)
    peer = address[0] if isinstance(address, tuple) and address else request.remote_ip
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and (is_local or is_host_address)(peer):
        return forwarded.split(",")[-1].strip() or peer
    return peer


@functools.lru_cache(maxsize=256)
def is_host_address(address: str) -> bool:
    """Whether `address` belongs to this host: only then can it be bound to."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
    except OSError:
        return False
    return True


def login_wait_message(wait: float) -> str:
    seconds = max(1, math.ceil(wait))
    unit = "second" if seconds == 1 else "seconds"
    return (
        f"Too many failed logins for this account from your address: try again in "
        f"{seconds} {unit}. Other addresses are not affected."
    )
