"""The GPU-hours record on both databases it runs on: SQLite (the embedded default) and
PostgreSQL (a real Debian server that scripts/test.sh starts; no mock)."""

from __future__ import annotations

import csv
import io
import os
import stat

import pytest
import sqlalchemy as sa

from spawner.accounting.holds import EXITED, RECLAIMED, STOPPED, Hold
from spawner.accounting.report import rows_csv
from spawner.accounting.usage_store import UsageStore, _postgres_url
from spawner.services.usage_page import chosen_period, render_usage, usage_view

pytestmark = pytest.mark.postgres

T0 = 1_800_000_000.0
DAY = 86400.0
NOV_1 = 1_793_491_200.0  # 2026-11-01T00:00:00Z
NOW = NOV_1 + 10 * DAY + 12 * 3600  # 2026-11-11 12:00 UTC


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gpu-usage.sqlite'}"
    else:
        url = os.environ.get("CUDASPAWNER_TEST_POSTGRES_URL")
        if not url:
            pytest.fail(
                "CUDASPAWNER_TEST_POSTGRES_URL is not set: run scripts/test.sh, which starts "
                "Debian's PostgreSQL for these tests."
            )
        engine = sa.create_engine(url)
        with engine.begin() as db:  # a clean table: this database is the tests' own
            db.execute(sa.text("DROP TABLE IF EXISTS gpu_holds"))
        engine.dispose()
    s = UsageStore(url)
    yield s
    s.close()


def hold(server="ann", gpu="0", start=T0, user="ann", groups=("vision",), **kw) -> Hold:
    return Hold(user, groups, "train", server, gpu, "H100", start, seen=start, **kw)


def test_a_hold_recorded_twice_is_one_hold(store):
    first = store.open_hold(hold())
    # The restarted hub, or the operations service, records the same hold again.
    assert store.open_hold(hold()) == first
    store.open_hold(hold(gpu="1"))
    assert sorted(h.gpu for h in store.open_holds()) == ["0", "1"]


def test_closing_keeps_a_reason_marked_before_and_closing_twice_changes_nothing(store):
    store.open_hold(hold())
    store.open_hold(hold(server="bob", user="bob"))
    store.mark_reason("ann", RECLAIMED)
    assert store.close_server("ann", T0 + 60, STOPPED) == 1
    assert store.close_server("ann", T0 + 99, STOPPED) == 0
    ann = [h for h in store.holds_between(0, T0 + 1000) if h.server == "ann"]
    assert [(h.end, h.reason, h.seen) for h in ann] == [(T0 + 60, RECLAIMED, T0 + 60)]
    assert [h.server for h in store.open_holds()] == ["bob"]


def test_seen_and_idle_touch_only_the_open_holds_of_that_server(store):
    store.open_hold(hold())
    store.open_hold(hold(server="bob", user="bob"))
    # An earlier hold of ann's, closed: what follows must not touch it.
    store.close_server("ann", T0 + 0.5, STOPPED)
    store.open_hold(hold(server="ann", start=T0 + 1))
    store.seen(["ann"], T0 + 30)
    store.add_idle("ann", 12.5)
    by = {(h.server, h.start): h for h in store.holds_between(0, T0 + 1000)}
    assert by[("ann", T0 + 1)].seen == T0 + 30 and by[("ann", T0 + 1)].idle_seconds == 12.5
    assert by[("bob", T0)].seen == T0 and by[("bob", T0)].idle_seconds == 0
    closed = [h for (s, t), h in by.items() if s == "ann" and h.end is not None]
    assert all(h.seen == h.end and h.idle_seconds == 0 for h in closed)


def test_holds_between_gives_the_overlapping_holds_open_ones_too(store):
    store.open_hold(hold(server="old", user="old", start=T0 - 7200))
    store.close_server("old", T0 - 3600, EXITED)
    store.open_hold(hold(server="edge", user="edge", start=T0 - 600))
    store.close_server("edge", T0 + 60, STOPPED)
    store.open_hold(hold(server="now", user="now", start=T0 + 100))
    store.open_hold(hold(server="later", user="later", start=T0 + 5000))
    found = sorted(h.server for h in store.holds_between(T0, T0 + 3600))
    assert found == ["edge", "now"]


def test_groups_and_odd_names_round_trip(store):
    """JupyterHub does not restrict group names (";" is allowed): the groups are kept as a
    JSON list, so no separator can split one."""
    odd = Hold("o'brien", ("a;b", 'q"uote', "ü"), "p", "o'brien/x", "MIG-1/2", "", T0, seen=T0)
    store.open_hold(odd)
    (back,) = store.open_holds()
    assert (back.user, back.groups, back.server, back.gpu) == (
        "o'brien",
        ("a;b", 'q"uote', "ü"),
        "o'brien/x",
        "MIG-1/2",
    )


def test_the_sqlite_record_is_the_hubs_alone_and_in_wal_mode(tmp_path):
    path = tmp_path / "data" / "gpu-usage.sqlite"
    store = UsageStore(f"sqlite:///{path}")
    store.open_hold(hold())
    with store.engine.connect() as db:  # the hub and its service write: WAL
        assert db.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    store.close()
    assert modes == {
        "gpu-usage.sqlite": 0o600,
        "gpu-usage.sqlite-wal": 0o600,
        "gpu-usage.sqlite-shm": 0o600,
    }


def test_a_bare_postgresql_url_gets_an_installed_driver_and_a_named_one_is_kept():
    bare = _postgres_url(sa.make_url("postgresql://u:p@db/usage")).get_driver_name()
    assert bare in ("psycopg2", "psycopg")
    __import__(bare)
    named = sa.make_url("postgresql+pg8000://u:p@db/usage")
    assert _postgres_url(named) is named


def test_the_usage_view_from_one_read_gives_tables_chart_and_csv_that_sum_up(store):
    """The same report on both databases."""
    holds = [
        Hold("ann", ("vision",), "train", "ann", "0", "H100", NOV_1 + DAY, idle_seconds=1800),
        Hold("bob", ("vision", "nlp"), "infer", "bob", "1", "H100", NOV_1 + 2 * DAY),
        Hold("=cmd", (), "train", "=cmd", "2", "H100", NOV_1 - DAY),  # from October
    ]
    for h in holds:
        store.open_hold(h)
    store.close_server("ann", NOV_1 + DAY + 7200, STOPPED)  # 2 h, half of it idle
    store.close_server("=cmd", NOV_1 + 3600, STOPPED)  # 1 h of it in November
    # bob's hold is open: it counts up to now.
    view = usage_view(store, chosen_period("month", "", "", NOW), NOW)
    users = {r.key: round(r.gpu_hours, 3) for r in view.tables["user"]}
    assert users == {"ann": 2.0, "bob": 8.5 * 24, "=cmd": 1.0}
    groups = {r.key: round(r.gpu_hours, 3) for r in view.tables["group"]}
    assert groups == {"vision": 2.0 + 204.0, "nlp": 204.0, "": 1.0}
    assert round(view.total.gpu_hours, 3) == 207.0 and view.total.idle_hours == 0.5
    assert len(view.days) == 30 and dict(view.days)["2026-11-02"] == 2.0
    rows = list(csv.DictReader(io.StringIO(rows_csv(view.tables["user"], "user"))))
    assert sum(float(r["gpu_hours"]) for r in rows) == pytest.approx(view.total.gpu_hours)
    assert "'=cmd" in [r["user"] for r in rows]  # never a spreadsheet formula
    html = render_usage(view, "/services/gpu-admin/", "period=month")
    assert 'data-role="usage-user"' in html and "<svg" in html and "(no group)" in html
