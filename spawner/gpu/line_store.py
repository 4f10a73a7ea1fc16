"""The line for busy GPUs, kept on disk: one SQLite file in the hub's data directory.

The hub's spawners read and write it (join, leave, their place), and so can the hub's
services and an admin (remove someone, move them to the front), so a place is held by the
file, not by a process: a place outlives the browser that asked for it and the hub that
was serving it. Each call is one short transaction; the calls are blocking (the spawner
runs them in a thread).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from .waiting_line import Waiter, WaitingLine

LINE_FILE = "gpu-line.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS waiters (
    user TEXT PRIMARY KEY,
    server_key TEXT NOT NULL,
    pool TEXT NOT NULL,
    gpus INTEGER NOT NULL,
    joined REAL NOT NULL,
    groups_json TEXT NOT NULL,
    options_json TEXT NOT NULL,
    seen REAL  -- the last look of the start that waits here (None: not yet)
)
"""


class LineStore:
    """The waiters of every pool, in one SQLite file (made 0600 on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        new = not self.path.exists()
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        if new:
            self.path.chmod(0o600)  # user names and their choices: the hub's business
        db.execute(_SCHEMA)
        return db

    def load(self) -> WaitingLine:
        with closing(self._connect()) as db:
            return WaitingLine(self._rows(db))

    def join(self, waiter: Waiter) -> Waiter:
        """The user's one place: a new one, or theirs renewed with its first time kept."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            line = WaitingLine(self._rows(db))
            kept = line.join(waiter)
            db.execute(
                "INSERT OR REPLACE INTO waiters VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kept.user,
                    kept.server_key,
                    kept.pool,
                    kept.gpus,
                    kept.joined,
                    json.dumps(list(kept.groups)),
                    json.dumps(kept.options),
                    waiter.joined,  # seen: this ask is alive now
                ),
            )
            db.execute("COMMIT")
        return kept

    def touch(self, user: str, now: float) -> None:
        """The waiting start of `user` is alive (it looks at the free GPUs)."""
        with closing(self._connect()) as db:
            db.execute("UPDATE waiters SET seen = ? WHERE user = ?", (now, user))

    def last_seen(self) -> dict[str, float | None]:
        """user -> the last look of their waiting start."""
        with closing(self._connect()) as db:
            return dict(db.execute("SELECT user, seen FROM waiters").fetchall())

    def leave(self, user: str) -> bool:
        """Remove the user's place; False when they had none."""
        with closing(self._connect()) as db:
            return db.execute("DELETE FROM waiters WHERE user = ?", (user,)).rowcount > 0

    def move_to_front(self, user: str) -> bool:
        """An admin's choice: the user goes first in their pool's line."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            line = WaitingLine(self._rows(db))
            me = line.place_of(user)
            if me is None:
                db.execute("ROLLBACK")
                return False
            first = min((w.joined for w in line.waiters if w.pool == me.pool), default=me.joined)
            db.execute("UPDATE waiters SET joined = ? WHERE user = ?", (first - 1, user))
            db.execute("COMMIT")
            return True

    @staticmethod
    def _rows(db: sqlite3.Connection) -> list[Waiter]:
        return [
            Waiter(u, key, pool, gpus, joined, tuple(json.loads(g)), json.loads(o))
            for u, key, pool, gpus, joined, g, o in db.execute(
                "SELECT user, server_key, pool, gpus, joined, groups_json, options_json "
                "FROM waiters"
            )
        ]
