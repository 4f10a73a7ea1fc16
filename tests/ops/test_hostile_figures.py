"""A user's server answers the service's status request as it likes: `server_figures` turns
that answer into trusted figures, or "unreadable". Pure and fast: stand-ins for the hub."""

from __future__ import annotations

import json
import logging
import math

import pytest

from spawner.services.admin_page import render_page
from spawner.services.fleet import GpuRow, GpuServer, fleet_rows
from spawner.services.gpu_reclaim import Look, ReclaimPolicy, Watch, decide
from spawner.services.server_figures import (
    CLOCK_SKEW,
    MAX_STATUS_BYTES,
    parse_status_body,
    read_status,
)
from tests.ops.test_fleet_service import FakeHub, make

NOW = 1000.0
GPU = {"index": 0, "uuid": "GPU-0", "name": "NVIDIA A100", "utilization_gpu": 37,
       "memory_used": 2**30, "memory_total": 80 * 2**30}  # fmt: skip


def answer(*gpus, **extra):
    return {"state": "ok", "gpus": list(gpus), "reclaim": {"warning": None, "kept_at": None},
            **extra}  # fmt: skip


def page(rows) -> str:
    return render_page(rows, looked_at=NOW, now=NOW, prefix="/services/gpu-admin/",
                       xsrf_form_html="")  # fmt: skip


HOSTILE = {
    "utilisation as a string": answer({**GPU, "utilization_gpu": "busy <script>"}),
    "utilisation NaN": answer({**GPU, "utilization_gpu": math.nan}),
    "utilisation infinite": answer({**GPU, "utilization_gpu": math.inf}),
    "utilisation negative": answer({**GPU, "utilization_gpu": -5}),
    "utilisation above 100": answer({**GPU, "utilization_gpu": 101}),
    "utilisation an int too large for a float": answer({**GPU, "utilization_gpu": 10**400}),
    "utilisation a bool": answer({**GPU, "utilization_gpu": True}),
    "utilisation a nested list": answer({**GPU, "utilization_gpu": [[0], {"a": [1]}]}),
    "memory as a string": answer({**GPU, "memory_used": "lots"}),
    "memory as a list": answer({**GPU, "memory_total": [80]}),
    "memory negative": answer({**GPU, "memory_used": -1}),
    "memory huge": answer({**GPU, "memory_used": 2**60, "memory_total": 2**61}),
    "memory a float": answer({**GPU, "memory_used": 1.5}),
    "memory used above total": answer({**GPU, "memory_used": 81 * 2**30}),
    "index a bool": answer({**GPU, "index": False}),
    "uuid a list": answer({**GPU, "uuid": ["GPU-0"]}),
    "name too long": answer({**GPU, "name": "A" * 10_000}),
    "name with control characters": answer({**GPU, "name": "A100\x1b[2J"}),
    "a GPU entry that is a string": answer(GPU, "GPU-1"),
    "a GPU entry that is a list": answer(GPU, [GPU]),
    "a GPU entry that is null": answer(GPU, None),
    "1000 GPU entries": answer(*[{**GPU, "index": i % 1024} for i in range(1000)]),
    "gpus not a list": {"state": "ok", "gpus": {"0": GPU}},
    "no state": {"gpus": [GPU]},
    "a list, not an object": [GPU],
    "a string": "ok",
    "did not answer": None,
}


@pytest.mark.parametrize("document", HOSTILE.values(), ids=HOSTILE.keys())
def test_garbage_in_any_figure_makes_the_whole_answer_unreadable(document):
    figures = read_status(document, NOW)
    assert not figures.readable and figures.gpus == () and figures.problem
    assert "<script>" not in figures.problem and "\x1b" not in figures.problem


def test_an_honest_answer_is_read_with_extra_keys_ignored_and_unknown_figures_as_none():
    mig = {**GPU, "uuid": "GPU-1", "index": 1, "utilization_gpu": None, "memory_used": None,
           "mig": [{"index": 0, "uuid": "MIG-1"}], "processes": [{"pid": "self"}]}  # fmt: skip
    document = answer(GPU, mig, backend="nvml", history={"junk": [1, 2]})
    figures = read_status(document, NOW)
    assert figures.readable and figures.problem == ""
    first, second = figures.gpus
    assert (first.uuid, first.index, first.name, first.utilization_gpu) == (
        "GPU-0", 0, "NVIDIA A100", 37.0)  # fmt: skip
    assert (first.memory_used, first.memory_total) == (2**30, 80 * 2**30)
    assert (second.utilization_gpu, second.memory_used, second.memory_total) == (
        None, None, 80 * 2**30)  # fmt: skip


def test_at_most_64_gpus_are_read():
    assert read_status(answer(*[GPU] * 64), NOW).readable
    assert not read_status(answer(*[GPU] * 65), NOW).readable


def test_a_server_without_gpu_figures_says_which_state_but_never_repeats_odd_text():
    assert "no_gpu" in read_status({"state": "no_gpu", "gpus": []}, NOW).problem
    odd = read_status({"state": "<b>pwned</b>", "gpus": []}, NOW)
    assert not odd.readable and "pwned" not in odd.problem


@pytest.mark.parametrize(
    "kept_at",
    [NOW + CLOCK_SKEW + 1, 1e12, math.inf, math.nan, -1.0, 0, True, "1000", [1000], 10**400],
)
def test_a_keep_in_the_future_or_that_is_not_a_time_is_not_believed(kept_at):
    figures = read_status({**answer(GPU), "reclaim": {"kept_at": kept_at}}, NOW)
    assert figures.readable and figures.kept_at is None


def test_a_keep_in_the_past_is_believed_and_a_slightly_fast_server_clock_counts_as_now():
    assert read_status({**answer(GPU), "reclaim": {"kept_at": NOW - 60}}, NOW).kept_at == NOW - 60
    skewed = read_status({**answer(GPU), "reclaim": {"kept_at": NOW + CLOCK_SKEW}}, NOW)
    assert skewed.kept_at == NOW
    assert read_status({**answer(GPU), "reclaim": "kept"}, NOW).kept_at is None


def test_a_body_over_the_size_limit_is_unreadable_without_being_parsed():
    body = b'{"state": "ok", "gpus": [], "pad": "' + b"x" * (10 * 2**20) + b'"}'
    figures = parse_status_body(body, NOW)
    assert not figures.readable and "larger than" in figures.problem
    assert MAX_STATUS_BYTES <= 1024 * 1024


NOT_JSON = {
    "NaN": b'{"state": "ok", "gpus": [{"utilization_gpu": NaN}]}',
    "Infinity": b'{"state": "ok", "gpus": [{"utilization_gpu": Infinity}]}',
    "-Infinity": b'{"state": "ok", "gpus": [{"utilization_gpu": -Infinity}]}',
    "1e999": b'{"state": "ok", "gpus": [{"utilization_gpu": 1e999}]}',
    "NaN keep": b'{"state": "ok", "gpus": [], "reclaim": {"kept_at": NaN}}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "cut": b'{"state": "ok", "gpus": []',
    "bytes": b"\xff\xfe\x00garbage",
    "null": b"null",
    "empty": b"",
}


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_a_body_that_is_not_strict_json_or_not_sane_is_unreadable(body):
    assert not parse_status_body(body, NOW).readable


def test_an_honest_body_reads_like_its_document():
    body = json.dumps(answer(GPU)).encode()
    assert parse_status_body(body, NOW) == read_status(answer(GPU), NOW)


def test_decide_ignores_a_keep_later_than_the_look_even_unchecked():
    policy = ReclaimPolicy(idle_after=60, warn_for=30)
    watch = Watch(idle_since=0.0)
    for kept_at in (1e12, math.nan, 101.0):
        assert decide(watch, Look(at=100.0, utilisation=0.0, kept_at=kept_at), policy) == (
            Watch(idle_since=0.0, stop_at=130.0), "warn")  # fmt: skip


def test_decide_still_counts_a_keep_in_the_past():
    policy = ReclaimPolicy(idle_after=60, warn_for=30)
    watch, action = decide(Watch(idle_since=0.0, stop_at=90.0),
                           Look(at=100.0, utilisation=0.0, kept_at=95.0), policy)  # fmt: skip
    assert (watch, action) == (Watch(idle_since=95.0, kept_seen=95.0), "clear")


class HostileHub(FakeHub):
    """Honest servers as FakeHub has them; the users in `answers` say what they like."""

    def __init__(self, utilisation, answers=None):
        super().__init__(utilisation)
        self.answers = answers or {}

    async def gpu_status(self, server):
        url = server.url
        user = url.split("/")[2]
        if user in self.answers:
            return self.answers[user]
        return await super().gpu_status(server)


async def looks(fleet, now, times):
    for t in times:
        now[0] = t
        await fleet.look()


@pytest.mark.parametrize("document", HOSTILE.values(), ids=HOSTILE.keys())
async def test_an_unreadable_server_decides_nothing_shows_as_unreadable_and_others_are_reclaimed(
    tmp_path, caplog, document
):
    now = [1000.0]
    hub = HostileHub({"ann": 0, "bob": 80, "eve": 0})
    fleet = make(tmp_path, hub, lambda: now[0])
    await fleet.look()  # eve's server still answers honestly: idle since 1000
    assert fleet.watches["eve"] == Watch(idle_since=1000.0)
    hub.answers["eve"] = document
    with caplog.at_level(logging.INFO, logger="cudaspawner.operations"):
        await looks(fleet, now, (1005, 1010, 1014))
        assert hub.sent == [("warn", "/user/ann/", 1015.0)]  # eve idle as long, not warned
        assert fleet.watches["eve"] == Watch(idle_since=1000.0)  # unchanged
        html = page(fleet.state.rows)
        assert html.count(">unreadable<") == 1 and "<script>" not in html
        eve = next(r for r in fleet.state.rows if r.user == "eve")
        assert eve.unreadable and eve.utilisation is None and eve.memory_used is None
        await looks(fleet, now, (1015, 1020))
    assert hub.sent[-1] == ("stop", "ann") and [s[0] for s in hub.sent] == ["warn", "stop"]
    unreadable_lines = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(unreadable_lines) == 1  # once, however often it answers garbage
    assert "<script>" not in caplog.text and "\x1b" not in caplog.text
    assert json.loads(json.dumps([r.__dict__ for r in fleet.state.rows], allow_nan=False))


async def test_a_server_readable_again_is_shown_and_decided_again_and_logged_again_next_time(
    tmp_path, caplog
):
    now = [1000.0]
    hub = HostileHub({"eve": 0}, {"eve": answer({**GPU, "utilization_gpu": "busy"})})
    fleet = make(tmp_path, hub, lambda: now[0])
    with caplog.at_level(logging.INFO, logger="cudaspawner.operations"):
        await looks(fleet, now, (1000, 1005))
        del hub.answers["eve"]
        await looks(fleet, now, (1010,))
        assert fleet.unreadable == {} and ">unreadable<" not in page(fleet.state.rows)
        hub.answers["eve"] = None
        await looks(fleet, now, (1015, 1020, 1025))
    first, again, unanswered = [r.getMessage() for r in caplog.records]
    assert "eve are unreadable" in first and "utilization_gpu" in first
    assert "eve are readable again" in again
    assert "eve are unreadable" in unanswered and "did not answer" in unanswered
    assert hub.sent == []  # idle since 1010, but unreadable since 1015: never warned on a guess


async def test_a_keep_pressed_far_in_the_future_does_not_save_an_idle_server(tmp_path):
    now = [1000.0]
    hub = HostileHub({"eve": 0})
    hub.kept_at["eve"] = 10**12
    fleet = make(tmp_path, hub, lambda: now[0])
    await looks(fleet, now, (1000, 1005, 1010, 1015))
    assert hub.sent == [("warn", "/user/eve/", 1015.0), ("stop", "eve")]


async def test_a_keep_pressed_in_the_past_still_withdraws_the_warning_and_restarts_the_wait(
    tmp_path,
):
    now = [1000.0]
    hub = HostileHub({"ann": 0})
    fleet = make(tmp_path, hub, lambda: now[0])
    await looks(fleet, now, (1000, 1010))
    hub.kept_at["ann"] = 1012.0
    await looks(fleet, now, (1013, 1015, 1021))
    assert hub.sent == [("warn", "/user/ann/", 1015.0), ("clear", "/user/ann/")]
    await looks(fleet, now, (1022,))
    assert hub.sent[-1] == ("warn", "/user/ann/", 1027.0)  # idle 10 s from the press


def test_the_page_and_the_table_never_fail_on_a_row_of_junk():
    server = GpuServer(user="eve", name="", key="eve", gpu_ids=("GPU-0", "GPU-1"))
    live = {"eve": ["GPU-0", {"uuid": ["x"], "index": "0", "utilization_gpu": "busy",
                              "memory_used": [1], "memory_total": math.nan}]}  # fmt: skip
    rows = fleet_rows([server], None, live, {}, NOW, {"eve": "GPU entry 0 is not an object."})
    junk = GpuRow(gpu="GPU-9", index=None, model=["x"], user="eve", server="eve",
                  utilisation="busy", memory_used=[1], memory_total=math.inf,
                  idle_seconds="long", stop_at="soon")  # fmt: skip
    html = page([*rows, junk])
    assert html.count(">unreadable<") == 2 and "busy" not in html
    assert fleet_rows([server], None, live, {}, NOW)[0].unreadable == ""  # old callers
