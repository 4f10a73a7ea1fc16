"""The spawn form: what a user sees, and what their browser posts back."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from spawner.planning.choice import Choice, UserOptionsError, validate_user_options
from spawner.planning.form import (
    FormTemplateError,
    ProfileAvailability,
    SiteLimits,
    build_cards,
    options_from_form,
    render_form,
)
from spawner.planning.profiles import parse_profiles, profiles_for_user

XSS = "<script>alert('pwned')</script>"

PROFILES = parse_profiles(
    [
        {
            "display_name": "PyTorch 2.9 / CUDA 12",
            "slug": "pytorch",
            "description": "PyTorch with CUDA 12.8 and cuDNN 9.",
            "image": "cudaspawner/pytorch-cuda:2.9",
            "gpus": {"choices": [1, 2, 4], "default": 1},
            "cpu_limit": 8,
            "mem_limit": "32G",
            "shm_size": "8g",
            "default": True,
        },
        {
            "display_name": "CPU only",
            "slug": "cpu",
            "image": "cudaspawner/cpu:latest",
            "cpu_limit": 2,
            "mem_limit": "4G",
        },
        {
            "display_name": "Notebook, 0 or 1 GPU",
            "slug": "flex",
            "gpus": {"choices": [0, 1], "default": 1},
        },
        {"display_name": "Staff 8 GPUs", "slug": "staff", "gpus": 8, "groups": ["staff"]},
    ]
)
VISIBLE = profiles_for_user(PROFILES, "alice", [])


def free(n: int, total: int = 4, **reasons: str) -> dict[str, ProfileAvailability]:
    return {p.slug: ProfileAvailability(n, total, reasons.get(p.slug)) for p in PROFILES}


class Page(HTMLParser):
    """The form as a browser sees it: its controls, and what submitting it would post."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.radios: list[dict] = []
        self.hidden: list[dict] = []
        self.boxes: list[dict] = []  # checkboxes
        self.selects: list[dict] = []
        self.text: list[str] = []
        self.terms: list[str] = []  # the <dt> headings of each card's details
        self._in_dt = False
        self._select: dict | None = None
        self._option: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "radio":
            self.radios.append(a)
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden.append(a)
        elif tag == "input" and a.get("type") == "checkbox":
            self.boxes.append(a)
        elif tag == "select":
            self._select = {**a, "options": []}
            self.selects.append(self._select)
        elif tag == "dt":
            self._in_dt = True
        elif tag == "option" and self._select is not None:
            self._option = {**a, "label": ""}
            self._select["options"].append(self._option)

    def handle_endtag(self, tag):
        self._in_dt = self._in_dt and tag != "dt"
        if tag == "select":
            self._select = None
        if tag == "option":
            self._option = None

    def handle_data(self, data):
        self.text.append(data)
        if self._in_dt:
            self.terms.append(data.strip())
        if self._option is not None:
            self._option["label"] += data.strip()

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())

    def radio(self, slug: str) -> dict:
        return next(r for r in self.radios if r["value"] == slug)

    def select(self, slug: str) -> dict | None:
        return next((s for s in self.selects if s["name"] == f"gpus-{slug}"), None)

    @property
    def checked(self) -> list[str]:
        return [r["value"] for r in self.radios if "checked" in r]

    def submit(self, profile: str | None = None, gpus: int | None = None) -> dict:
        """Post the form as a browser would, after clicking `profile` and picking `gpus`."""
        data: dict[str, list[str]] = {"_xsrf": ["token"]}
        for r in self.radios:
            chosen = r["value"] == profile if profile else "checked" in r
            if chosen and "disabled" not in r:
                data.setdefault(r["name"], []).append(r["value"])
        for h in self.hidden:
            data.setdefault(h["name"], []).append(h["value"])
        for b in self.boxes:
            if "checked" in b and "disabled" not in b:
                data.setdefault(b["name"], []).append(b["value"])
        for s in self.selects:
            if "disabled" in s:
                continue
            options = s["options"]
            pick = next((o for o in options if "selected" in o), None)
            if profile and s["name"] == f"gpus-{profile}" and gpus is not None:
                pick = next(o for o in options if o["value"] == str(gpus))
            pick = pick or next((o for o in options if "disabled" not in o), None)
            if pick and "disabled" not in pick:  # a disabled option is never posted
                data.setdefault(s["name"], []).append(pick["value"])
        return data


def test_the_form_lists_exactly_the_profiles_the_user_may_use():
    page = Page(render_form(VISIBLE, None, free(4), gpus_on_host=4))
    assert [r["value"] for r in page.radios] == ["pytorch", "cpu", "flex"]
    assert page.terms.count("GPUs") == 3
    assert "Staff 8 GPUs" not in page.words
    assert "PyTorch 2.9 / CUDA 12" in page.words
    assert "PyTorch with CUDA 12.8 and cuDNN 9." in page.words
    assert "cudaspawner/pytorch-cuda:2.9" in page.words
    assert "Memory 32G" in page.words and "Shared memory 8g" in page.words
    assert "CPUs 8" in page.words


def test_the_default_profile_and_its_default_gpu_count_are_preselected():
    page = Page(render_form(VISIBLE, None, free(4), gpus_on_host=4))
    assert page.checked == ["pytorch"]
    selected = [o["value"] for o in page.select("pytorch")["options"] if "selected" in o]
    assert selected == ["1"]


def test_the_last_choice_is_preselected_over_the_default():
    last = Choice(VISIBLE[2], 1)
    page = Page(render_form(VISIBLE, last, free(4), gpus_on_host=4))
    assert page.checked == ["flex"]
    assert [o["value"] for o in page.select("flex")["options"] if "selected" in o] == ["1"]


@pytest.mark.parametrize("where", ["display_name", "description"])
def test_markup_in_profile_text_is_shown_escaped_never_run(where):
    raw = {"display_name": "Evil", "slug": "evil", where: XSS}
    html = render_form(parse_profiles([raw]), None, None, gpus_on_host=0)
    assert XSS not in html
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    assert XSS in Page(html).words  # the user reads the text as written


def test_an_error_message_with_markup_is_escaped():
    try:
        validate_user_options({"profile": XSS}, VISIBLE)
    except UserOptionsError as e:
        message = str(e)
    html = render_form(VISIBLE, None, None, gpus_on_host=4, error=message)
    assert XSS not in html
    assert "is not offered" in Page(html).words and XSS in Page(html).words


def test_gpu_counts_above_the_free_gpus_are_disabled_and_say_so():
    page = Page(render_form(VISIBLE, None, free(2), gpus_on_host=4))
    options = {o["value"]: o for o in page.select("pytorch")["options"]}
    assert "disabled" not in options["1"] and "disabled" not in options["2"]
    assert "disabled" in options["4"]
    assert options["4"]["label"] == "4 GPUs (only 2 free)"
    assert "2 of 4 free right now" in page.words


def test_a_profile_that_cannot_be_met_now_is_disabled_with_the_reason():
    page = Page(render_form(VISIBLE, None, free(0), gpus_on_host=4))
    assert "disabled" in page.radio("pytorch")
    assert "disabled" in page.select("pytorch")
    assert "Not available right now: needs 1 GPU, 0 free of 4." in page.words
    # The default cannot start, so the next usable profile is preselected instead.
    assert page.checked == ["cpu"]
    assert "disabled" not in page.radio("flex")
    flex = {o["value"]: o for o in page.select("flex")["options"]}
    assert "disabled" in flex["1"] and "selected" in flex["0"]


def test_the_reason_given_by_the_spawner_is_shown():
    reason = "all GPUs are reserved for the course until 14:00"
    page = Page(render_form(VISIBLE, None, free(4, pytorch=reason), gpus_on_host=4))
    assert "disabled" in page.radio("pytorch")
    assert f"Not available right now: {reason}." in page.words


def test_a_last_gpu_count_no_longer_free_falls_back_to_one_that_is():
    last = Choice(VISIBLE[0], 4)
    page = Page(render_form(VISIBLE, last, free(2), gpus_on_host=4))
    assert page.checked == ["pytorch"]
    selected = [o["value"] for o in page.select("pytorch")["options"] if "selected" in o]
    assert selected == ["2"]


def test_on_a_host_without_gpus_no_gpu_choice_is_shown():
    page = Page(render_form(VISIBLE, None, free(0, total=0), gpus_on_host=0))
    assert page.selects == []
    assert "GPUs" not in page.terms and "Image" in page.terms
    assert "free right now" not in page.words and "CPU only)" not in page.words
    # A GPU-only profile cannot start there; the CPU one is preselected.
    assert "disabled" in page.radio("pytorch")
    assert page.checked == ["cpu"]
    # A profile that also offers 0 GPUs posts 0 without showing a choice.
    choice = validate_user_options(options_from_form(page.submit("flex")), VISIBLE)
    assert (choice.profile.slug, choice.gpus) == ("flex", 0)


def test_a_gpu_card_on_a_host_without_gpus_says_so():
    cards = {c.slug: c for c in build_cards(VISIBLE, None, None, 0)}
    assert cards["pytorch"].disabled and cards["pytorch"].reason == "This host has no GPUs"
    page = Page(render_form(VISIBLE, None, None, gpus_on_host=0))
    assert "Not available right now: This host has no GPUs." in page.words


def test_each_card_shows_the_limits_its_server_gets_the_profiles_else_the_sites():
    site = SiteLimits(mem_limit=6 * 1024**3, cpu_limit=1.5)
    cards = {c.slug: c for c in build_cards(VISIBLE, None, None, 4, site)}
    assert (cards["pytorch"].mem_limit, cards["pytorch"].cpu_limit) == ("32G", "8")
    assert (cards["flex"].mem_limit, cards["flex"].cpu_limit) == ("6G", "1.5")
    page = Page(render_form(VISIBLE, None, None, gpus_on_host=4, site=site))
    assert page.words.count("Memory 6G") == 1  # flex; pytorch and cpu have their own
    assert "Memory 32G" in page.words and "Memory 4G" in page.words
    # Without site limits, a profile without its own shows none.
    bare = {c.slug: c for c in build_cards(VISIBLE, None, None, 4)}
    assert bare["flex"].mem_limit is None and bare["flex"].cpu_limit is None


def test_dockerspawners_zero_limits_mean_none_and_are_not_shown_as_zero():
    unlimited = SiteLimits(mem_limit=0, cpu_limit=0.0)
    cards = {c.slug: c for c in build_cards(VISIBLE, None, None, 4, unlimited)}
    assert cards["flex"].mem_limit is None and cards["flex"].cpu_limit is None
    page = Page(render_form(VISIBLE, None, None, gpus_on_host=4, site=unlimited))
    assert "Memory 0" not in page.words and "CPUs 0" not in page.words


def test_dockerspawners_image_field_is_passed_on_first_value_first():
    assert options_from_form({"image": ["1.0", "1.1"]}) == {"image": "1.0"}


def test_without_availability_nothing_is_disabled_for_lack_of_gpus():
    page = Page(render_form(VISIBLE, None, None, gpus_on_host=4))
    assert not any("disabled" in r for r in page.radios)
    assert "free right now" not in page.words


def test_a_user_with_no_profiles_is_told_to_ask_for_access():
    page = Page(render_form([], None, None, gpus_on_host=4))
    assert page.radios == []
    assert "No server profile is available to your account" in page.words


@pytest.mark.parametrize(
    ("profile", "gpus", "expected"),
    [
        (None, None, ("pytorch", 1)),  # submit without touching anything
        ("pytorch", 2, ("pytorch", 2)),
        ("cpu", None, ("cpu", 0)),
        ("flex", 1, ("flex", 1)),
        ("flex", 0, ("flex", 0)),
    ],
)
def test_what_the_browser_posts_round_trips_to_the_users_choice(profile, gpus, expected):
    page = Page(render_form(VISIBLE, None, free(4), gpus_on_host=4))
    options = options_from_form(page.submit(profile, gpus))
    assert set(options) <= {"profile", "gpus"}
    choice = validate_user_options(options, VISIBLE)
    assert (choice.profile.slug, choice.gpus) == expected
    # The choice, shown again, is what gets preselected.
    again = Page(render_form(VISIBLE, choice, free(4), gpus_on_host=4))
    assert again.checked == [expected[0]]


def test_options_from_form_reads_only_the_chosen_cards_gpu_count():
    formdata = {
        "_xsrf": ["x"],
        "profile": ["flex"],
        "gpus-pytorch": ["4"],
        "gpus-flex": ["1"],
    }
    assert options_from_form(formdata) == {"profile": "flex", "gpus": 1}
    assert options_from_form({"profile": ["cpu"], "gpus-pytorch": ["4"]}) == {"profile": "cpu"}


def test_options_from_form_accepts_plain_gpus_and_query_style_strings():
    assert options_from_form({"profile": ["pytorch"], "gpus": ["2"]}) == {
        "profile": "pytorch",
        "gpus": 2,
    }
    assert options_from_form({"profile": "pytorch", "gpus": "4"}) == {
        "profile": "pytorch",
        "gpus": 4,
    }
    assert options_from_form({}) == {}


@pytest.mark.parametrize(
    ("formdata", "field", "says"),
    [
        ({"profile": ["pytorch"], "gpus-pytorch": ["2.5"]}, "gpus", "not '2.5'"),
        ({"profile": ["pytorch"], "gpus-pytorch": ["-1"]}, "gpus", "not '-1'"),
        ({"profile": ["pytorch", "cpu"]}, "profile", "sent 2 times"),
        ({"profile": ["pytorch"], "gpus-pytorch": ["1", "2"]}, "gpus-pytorch", "sent 2 times"),
        ({"profile": [7]}, "profile", "malformed"),
    ],
)
def test_a_malformed_post_is_refused_with_the_field_named(formdata, field, says):
    with pytest.raises(UserOptionsError) as info:
        options_from_form(formdata)
    assert says in str(info.value)
    assert info.value.field == field


def test_an_admin_template_replaces_the_form_and_still_escapes(tmp_path):
    template = tmp_path / "my_form.html"
    template.write_text(
        "<ul>{% for card in cards %}"
        '<li><input type="radio" name="profile" value="{{ card.slug }}">'
        "{{ card.profile.display_name }} ({{ card.free }} free)</li>"
        "{% endfor %}</ul>"
    )
    evil = parse_profiles([{"display_name": XSS, "slug": "evil"}])
    html = render_form(evil + VISIBLE, None, free(3), gpus_on_host=4, template_path=str(template))
    assert html.startswith("<ul><li>")
    assert XSS not in html and "(3 free)" in html
    assert "card mb-3" not in html  # the built-in template was not used


def test_an_admin_template_can_extend_the_built_in_one(tmp_path):
    template = tmp_path / "profiles_form.html"  # same name as the built-in: must not loop
    template.write_text(
        '{% extends "cudaspawner/profiles_form.html" %}'
        "{% block intro %}<p>Our cluster rules apply.</p>{% endblock %}"
        "{% block card_extra %}<small>slug={{ card.slug }}</small>{% endblock %}"
    )
    page = Page(render_form(VISIBLE, None, None, gpus_on_host=4, template_path=str(template)))
    assert "Our cluster rules apply." in page.words
    assert "slug=pytorch" in page.words and "slug=flex" in page.words
    assert [r["value"] for r in page.radios] == ["pytorch", "cpu", "flex"]


def test_a_missing_admin_template_names_the_path(tmp_path):
    missing = str(tmp_path / "nope.html")
    with pytest.raises(FormTemplateError, match="does not exist"):
        render_form(VISIBLE, None, None, gpus_on_host=4, template_path=missing)


def test_an_admin_template_with_a_syntax_error_names_the_line(tmp_path):
    template = tmp_path / "broken.html"
    template.write_text("<p>\n{% for card in cards %}\n")
    with pytest.raises(FormTemplateError, match="line"):
        render_form(VISIBLE, None, None, gpus_on_host=4, template_path=str(template))


# --- the line for busy GPUs ----------------------------------------------------------------
def test_with_the_line_a_profile_whose_gpus_are_all_taken_can_wait_with_the_box_ticked():
    page = Page(render_form(VISIBLE, None, free(0), gpus_on_host=4, can_wait=True))
    assert "disabled" not in page.radio("pytorch") and page.checked == ["pytorch"]
    box = next(b for b in page.boxes if b["name"] == "wait-pytorch")
    assert "checked" in box
    assert "Wait for a GPU: if none is free, keep my place in line" in page.words
    posted = options_from_form(page.submit("pytorch", 2))
    assert posted == {"profile": "pytorch", "gpus": 2, "wait": True}
    choice = validate_user_options(posted, VISIBLE, gpus_on_host=4)
    assert (choice.profile.slug, choice.gpus, choice.wait) == ("pytorch", 2, True)


def test_with_the_line_counts_above_the_free_gpus_say_they_wait_and_the_box_starts_unticked():
    page = Page(render_form(VISIBLE, None, free(2), gpus_on_host=4, can_wait=True))
    options = {o["value"]: o for o in page.select("pytorch")["options"]}
    assert "disabled" not in options["4"] and options["4"]["label"] == "4 GPUs (wait in line)"
    box = next(b for b in page.boxes if b["name"] == "wait-pytorch")
    assert "checked" not in box
    assert options_from_form(page.submit("pytorch", 1)) == {"profile": "pytorch", "gpus": 1}


def test_the_line_never_offers_what_the_host_does_not_have():
    page = Page(render_form(VISIBLE, None, free(0, total=0), gpus_on_host=0, can_wait=True))
    assert not page.boxes and "disabled" in page.radio("pytorch")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"profile": "cpu", "wait": True}, "'wait' is for GPUs"),
        ({"profile": "pytorch", "wait": "maybe"}, "'wait' must be true or false"),
    ],
)
def test_a_wait_that_makes_no_sense_is_refused_with_a_sentence(options, says):
    with pytest.raises(UserOptionsError, match=says):
        validate_user_options(options, VISIBLE, gpus_on_host=4)


def test_the_rest_api_may_ask_to_wait_or_not():
    assert validate_user_options({"profile": "pytorch", "wait": True}, VISIBLE).wait is True
    assert validate_user_options({"profile": "pytorch", "wait": False}, VISIBLE).wait is False
    assert validate_user_options({"wait": True}, VISIBLE).profile.slug == "pytorch"
