"""The operations service's side of the GPU-hours record, as pure rules: which holds a
look describes, and which open holds to close (and when) once their server is gone."""

from __future__ import annotations

from datetime import datetime, timezone

from spawner.accounting.holds import Hold
from spawner.docker_edge.usage_record import usage_note_html
from spawner.services.fleet import GpuServer
from spawner.services.usage_keeper import holds_of, stale

T0 = 1_800_000_000.0


def hold(server: str, seen: float | None, start: float = T0) -> Hold:
    return Hold(server, (), "gpu", server, "0", "", start, seen=seen)


def test_a_look_describes_one_hold_per_gpu_from_the_since_label():
    since = datetime.fromtimestamp(T0, timezone.utc)
    server = GpuServer("ann", "", "ann", ("0", "1"), "train", since, ("vision",))
    holds = holds_of(server, {"0": "H100"}, now=T0 + 60)
    assert [(h.gpu, h.model, h.start, h.seen, h.groups) for h in holds] == [
        ("0", "H100", T0, T0 + 60, ("vision",)),
        ("1", "", T0, T0 + 60, ("vision",)),
    ]
    # A server whose label gives no time is not guessed at.
    assert holds_of(GpuServer("bob", "", "bob", ("2",)), {}, now=T0) == []


def test_holds_of_a_server_gone_unseen_close_at_their_last_look_not_now():
    open_holds = [hold("ann", T0 + 100), hold("bob", T0 + 290), hold("cat", None, start=T0 + 5)]
    ends = stale(open_holds, alive={"dan"}, now=T0 + 300, grace=20)
    # bob was seen 10 s ago: perhaps just started, the hub's list may not have it yet.
    assert ends == {"ann": T0 + 100, "cat": T0 + 5}
    assert stale(open_holds, alive={"ann", "bob", "cat"}, now=T0 + 300, grace=20) == {}


def test_the_forms_note_shows_the_figures_and_escapes_the_warnings():
    html = usage_note_html({"week": 1.26, "month": 10}, ["Your group <b>x</b> has used 9"])
    assert "Your GPU use: 1.26 GPU-hours this week, 10.00 this month." in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert usage_note_html({}, []) == ""
