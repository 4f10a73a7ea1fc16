"""The GPU-hours record, kept durably: one row per hold, in SQLite or PostgreSQL
(SQLAlchemy Core; the same URL for the hub and its operations service).

A hold is unique by (server, GPU, start): the start is the container's label, so a
restarted hub, or the service recording a hold the hub already wrote, finds the same row
and never counts it twice. Every method is synchronous and short: callers run it in a
thread, off the event loop.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url

from .holds import Hold

metadata = sa.MetaData()
holds_table = sa.Table(
    "gpu_holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user", sa.String(255), nullable=False),
    # JupyterHub does not restrict group names (";" and "," included): a JSON list, not a
    # joined string. Text, decoded by `_holds` (many holds share one list: decoded once).
    sa.Column("groups", sa.Text, nullable=False),
    sa.Column("profile", sa.String(255), nullable=False),
    sa.Column("server", sa.String(512), nullable=False),
    sa.Column("gpu", sa.String(255), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("start", sa.Float, nullable=False),
    sa.Column("end", sa.Float, nullable=True),
    sa.Column("seen", sa.Float, nullable=True),
    sa.Column("idle_seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("reason", sa.String(32), nullable=True),
    sa.UniqueConstraint("server", "gpu", "start", name="one_hold_per_gpu_start"),
    sa.Index("gpu_holds_start", "start"),
    sa.Index("gpu_holds_end", "end"),
    sa.Index("gpu_holds_user", "user"),
)
_COLUMNS = [c for c in holds_table.c if c.name != "id"]


def _postgres_url(url: URL) -> URL:
    """A bare `postgresql://` with the driver that is installed: psycopg2 where it is, else
    psycopg (3, the `postgres` extra). SQLAlchemy 2.0 reads a bare URL as psycopg2 and 2.1
    as psycopg, so the URL must not depend on which of them the hub has."""
    if url.drivername != "postgresql":
        return url  # the admin named a driver: theirs
    for driver in ("psycopg2", "psycopg"):
        if importlib.util.find_spec(driver) is not None:
            return url.set(drivername=f"postgresql+{driver}")
    return url


def _engine(url: str) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # pre_ping: a server restarted between two looks is reconnected, not an error.
        return sa.create_engine(_postgres_url(parsed), pool_pre_ping=True)
    path = parsed.database
    if path and path != ":memory:":
        # It holds user names: the hub's account only (0600), made so before the first write.
        # SQLite gives its -wal and -shm files the database file's mode.
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
    engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _wal(connection, _record) -> None:
        # Two processes write (the hub, its operations service): WAL lets readers go on.
        connection.execute("PRAGMA journal_mode=WAL")

    return engine


class UsageStore:
    """The holds in one database; `url` is `sqlite:///path` or `postgresql://...`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        metadata.create_all(self.engine)
        self._insert = sqlite.insert if self.engine.dialect.name == "sqlite" else postgresql.insert

    def open_hold(self, hold: Hold) -> int:
        """Record a hold that started; the id of the row, new or already there (unchanged)."""
        t = holds_table
        values = {
            "user": hold.user,
            "groups": json.dumps(list(hold.groups)),
            "profile": hold.profile,
            "server": hold.server,
            "gpu": hold.gpu,
            "model": hold.model,
            "start": hold.start,
            "end": hold.end,
            "seen": hold.seen,
            "idle_seconds": hold.idle_seconds,
            "reason": hold.reason,
        }
        insert = (
            self._insert(t)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["server", "gpu", "start"])
        )
        with self.engine.begin() as db:
            db.execute(insert)
            return db.execute(
                sa.select(t.c.id).where(
                    t.c.server == hold.server, t.c.gpu == hold.gpu, t.c.start == hold.start
                )
            ).scalar_one()

    def _open_of(self, server: str):
        t = holds_table
        return sa.and_(t.c.server == server, t.c.end.is_(None))

    def close_server(self, server: str, end: float, reason: str) -> int:
        """Close the server's open holds at `end`; how many. A reason marked before is kept."""
        t = holds_table
        with self.engine.begin() as db:
            return db.execute(
                t.update()
                .where(self._open_of(server))
                .values(end=end, seen=end, reason=sa.func.coalesce(t.c.reason, reason))
            ).rowcount

    def mark_reason(self, server: str, reason: str) -> None:
        """The reason the server's holds will end with (the reclaim, before it stops it)."""
        with self.engine.begin() as db:
            db.execute(holds_table.update().where(self._open_of(server)).values(reason=reason))

    def seen(self, servers: Iterable[str], now: float) -> None:
        """These servers' open holds were alive at `now`."""
        servers = list(servers)
        if not servers:
            return
        t = holds_table
        with self.engine.begin() as db:
            db.execute(
                t.update().where(t.c.server.in_(servers), t.c.end.is_(None)).values(seen=now)
            )

    def add_idle(self, server: str, seconds: float) -> None:
        """Add idle time to the server's open holds."""
        t = holds_table
        with self.engine.begin() as db:
            db.execute(
                t.update()
                .where(self._open_of(server))
                .values(idle_seconds=t.c.idle_seconds + seconds)
            )

    def _holds(self, *where) -> list[Hold]:
        t = holds_table
        query = sa.union_all(*(sa.select(t.c.id, *_COLUMNS).where(w) for w in where))
        with self.engine.connect() as db:
            rows = db.execute(query if len(where) > 1 else query.selects[0]).all()
        return _as_holds(rows)

    def open_holds(self) -> list[Hold]:
        """Every hold not ended yet."""
        return self._holds(holds_table.c.end.is_(None))

    def holds_between(self, since: float, until: float) -> list[Hold]:
        """Every hold with some time in [since, until), the open ones included."""
        t = holds_table
        # Two indexed reads, not one scan of every hold that started before `until`.
        return self._holds(
            sa.and_(t.c.end.is_(None), t.c.start < until),
            sa.and_(t.c.end > since, t.c.start < until),
        )

    def totals(self, now: float) -> list[tuple[tuple[str, ...], str, float, float]]:
        """All-time (groups, profile, GPU-seconds held, GPU-seconds idle), open holds up to
        `now`: one grouped read, for the hub's counters."""
        t = holds_table
        held = sa.func.sum(sa.func.coalesce(t.c.end, now) - t.c.start)
        query = sa.select(t.c.groups, t.c.profile, held, sa.func.sum(t.c.idle_seconds)).group_by(
            t.c.groups, t.c.profile
        )
        with self.engine.connect() as db:
            rows = db.execute(query).all()
        return [(tuple(json.loads(g or "[]")), p, h or 0.0, i or 0.0) for g, p, h, i in rows]

    def close(self) -> None:
        self.engine.dispose()


def _as_holds(rows) -> list[Hold]:
    """Rows of (id, *_COLUMNS) as holds."""
    groups = lru_cache(maxsize=4096)(lambda text: tuple(json.loads(text or "[]")))
    # Positional, in the select's column order (a Row's attribute access is slow on a year
    # of holds).
    return [
        Hold(user, groups(g), profile, server, gpu, model, start, end, seen, idle, reason, id_)
        for id_, user, g, profile, server, gpu, model, start, end, seen, idle, reason in rows
    ]
