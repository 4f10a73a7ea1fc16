"""Upstream tests whose expectation differs on purpose for CUDADockerSpawner, restated.

Each replaces one test that deselected.txt lists for cuda-docker, and proves the same thing
through what a user or an admin sees, for whichever spawner is under test (run.sh passes this
file explicitly; its name keeps the project's own suite from collecting it).
"""

from __future__ import annotations

import logging
from html.parser import HTMLParser
from types import SimpleNamespace

from traitlets.config import Config


class ChoiceLabels(HTMLParser):
    """The labels of the choices a form offers: <option> texts and radio buttons' <label>s."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[str] = []
        self._radio_ids: set[str] = set()
        self._label_for: dict[str, str] = {}
        self._open: tuple[str, str] | None = None  # (tag, radio id) whose text is being read
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "radio":
            self._radio_ids.add(a.get("id") or "")
        elif tag in ("option", "label"):
            self._open, self._text = (tag, a.get("for") or ""), ""

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[0] == tag:
            kind, target = self._open
            if kind == "option":
                self.labels.append(self._text.strip())
            else:
                self._label_for[target] = self._text.strip()
            self._open = None

    def choices(self) -> list[str]:
        return self.labels + [self._label_for[i] for i in self._radio_ids if i in self._label_for]


def choice_labels(html: str) -> list[str]:
    parser = ChoiceLabels()
    parser.feed(html)
    return parser.choices()


def new_spawner(cls: type, allowed_images: dict):
    config = Config()
    config.DockerSpawner.allowed_images = allowed_images
    spawner = cls(config=config)
    spawner.user = SimpleNamespace(name="someone", groups=[])  # the form is per user
    return spawner


async def test_default_options_form_offers_each_allowed_image(spawner_under_test):
    """Replaces test_dockerspawner.py::test_default_options_form.

    One allowed image: no form, the server starts straight away. Two: a form offering both.
    DockerSpawner renders a <select>; CUDADockerSpawner one card per image (docs/profiles.md),
    so the upstream test's comparison with DockerSpawner's exact HTML cannot hold.
    """
    one = new_spawner(spawner_under_test, {"1.0": "jupyterhub/singleuser:1.0"})
    assert await one.get_options_form() == ""

    two = new_spawner(
        spawner_under_test,
        {"1.0": "jupyterhub/singleuser:1.0", "1.1": "jupyterhub/singleuser:1.1"},
    )
    offered = choice_labels(await two.get_options_form())
    assert {"1.0", "1.1"} <= set(offered), offered


def test_deprecated_image_whitelist_still_works(spawner_under_test, caplog):
    """Replaces test_deprecations.py::test_deprecated_config.

    DockerSpawner's deprecation warning names the class in use (`type(self).__name__`), so an
    admin of a subclass reads that subclass's name; the old setting still takes effect.
    """
    config = Config()
    config.DockerSpawner.image_whitelist = {"1.0": "jupyterhub/singleuser:1.0"}
    log = logging.getLogger("testlog")
    spawner = spawner_under_test(config=config, log=log)

    cls = spawner_under_test.__name__
    assert caplog.record_tuples == [
        (
            "testlog",
            logging.WARNING,
            f"{cls}.image_whitelist is deprecated in DockerSpawner 12.0, "
            f"use {cls}.allowed_images instead",
        )
    ]
    assert spawner.allowed_images == {"1.0": "jupyterhub/singleuser:1.0"}
