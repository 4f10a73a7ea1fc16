"""The GPU admin page's view of the line for busy GPUs, as pure rendering: the places in the
spawner's own serving order, how long each waited, and buttons only where they act."""

from __future__ import annotations

import re

from spawner.gpu.waiting_line import Waiter, WaitingLine
from spawner.services.admin_page import line_places, render_page

NOW = 10_000.0


def place(user: str, waited: float, gpus: int = 1, groups=()) -> Waiter:
    return Waiter(user, user, "host", gpus, NOW - waited, tuple(groups))


def render(line) -> str:
    return render_page([], line=line, looked_at=NOW, now=NOW, prefix="/p/", xsrf_form_html="")


def test_places_in_order_of_joining_with_the_time_waited_and_buttons():
    line = WaitingLine([place("bea", 60), place("ada", 3 * 3600, gpus=2)])
    places = line_places(line, NOW)
    assert [(p.place, p.user, p.gpus) for p in places] == [(1, "ada", 2), (2, "bea", 1)]
    html = render(places)
    rows = re.findall(r'<tr data-user="(\w+)">\s*<td class="num">(\d)</td>', html)
    assert rows == [("ada", "1"), ("bea", "2")]
    assert "3 h 0 min" in html and "60 s" in html
    # "Move to front" only where it moves someone; "Remove" on every place.
    assert html.count('data-role="front"') == 1 and html.count('data-role="remove"') == 2


def test_group_shares_reorder_the_view_as_they_reorder_the_line():
    line = WaitingLine([place("vic", 600, groups=["vision"]), place("nia", 60, groups=["nlp"])])
    places = line_places(line, NOW, held_by_group={"vision": 4}, shares={"vision": 2})
    assert [p.user for p in places] == ["nia", "vic"]


def test_an_empty_line_says_so_and_a_strange_name_is_text():
    assert "Nobody is waiting for a GPU." in render([])
    html = render(line_places(WaitingLine([place("<b>x</b>", 5)]), NOW))
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
