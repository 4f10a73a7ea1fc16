"""What a user sees while their server starts: progress events, and its first answer.

Data in, data out: the spawner adds events and hands over callables; nothing here holds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable


class Progress:
    """One start's progress events, streamed to the hub's spawn page as they come."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def add(self, percent: int, message: str) -> None:
        self.events.append({"progress": percent, "message": message})

    async def stream(self, finished: Callable[[int], bool]) -> AsyncIterator[dict]:
        """Every event, as it comes, until `finished(events sent so far)` says so."""
        sent = 0
        while True:
            while sent < len(self.events):
                yield self.events[sent]
                sent += 1
            if finished(sent):
                break
            await asyncio.sleep(0.2)


async def wait_listening(
    ip: str, port: int, timeout: float, has_exited: Callable[[], Awaitable[bool]]
) -> None:
    """Return as soon as `ip:port` accepts connections, the container exits, or `timeout`.

    JupyterHub then checks the server once and finds it up. Without this its check backs
    off exponentially (0.2, 0.6, 1.4, 3.0, 6.2 s ...), so a server that is ready at 3.1 s
    is seen at 6.2 s. A TCP connect every 50 ms costs the container nothing. Not listening
    by `timeout`: JupyterHub's own wait (http_timeout) takes over.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_poll = loop.time() + 1
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 1)
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return
        if loop.time() > next_poll:  # don't wait for a container that died
            next_poll = loop.time() + 1
            if await has_exited():
                return  # JupyterHub's own check reports the failure
