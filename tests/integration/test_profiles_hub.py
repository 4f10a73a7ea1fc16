"""Issue 3 on a real hub and engine: the form, the HTML post, refusals, a change of profile."""

from __future__ import annotations

import html
import re

import pytest

from spawner.host.deployment import ensure_network
from tests.hubtools import (
    TEST_NETWORK,
    TEST_PREFIX,
    Browser,
    container_of,
    hub_containers,
    make_hub,
    remove_hub_leftovers,
)

pytestmark = [pytest.mark.docker, pytest.mark.hub]

ALT_IMAGE = "cudaspawner/cpu:profile-alt"  # a second name for the CPU image

PROFILES = f"""
c.CUDADockerSpawner.profiles = [
    {{"slug": "cpu", "display_name": "CPU only", "description": "Small <b>CPU</b> box",
      "image": "cudaspawner/cpu:latest", "default": True,
      "cpu_limit": 1.5, "mem_limit": "1536M", "shm_size": "512m",
      "environment": {{"TEAM": "everyone"}}}},
    {{"slug": "cpu-alt", "display_name": "CPU, other image", "image": "{ALT_IMAGE}",
      "groups": ["research"]}},
    {{"slug": "secret", "display_name": "Secret project", "image": "{ALT_IMAGE}",
      "users": ["zed"]}},
]
"""


@pytest.fixture(scope="module")
def alt_image(docker_client):
    docker_client.images.get("cudaspawner/cpu:latest").tag(ALT_IMAGE)
    yield ALT_IMAGE
    docker_client.images.remove(ALT_IMAGE, noprune=True)


@pytest.fixture(scope="module")
def refusing_hub(tmp_path_factory, docker_client, alt_image):
    """One hub for the tests whose requests are all refused: none of them makes anything
    (each checks so), so they can share it, and the suite starts four hubs fewer."""
    ensure_network(docker_client, TEST_NETWORK)
    hub = make_hub(tmp_path_factory.mktemp("refusing"), PROFILES)
    hub.start()
    yield hub
    hub.stop()
    remove_hub_leftovers(docker_client, hub)


def _offered(html: str) -> list[str]:
    return re.findall(r'name="profile"[^>]*value="([^"]+)"', html)


def test_form_lists_exactly_the_profiles_the_users_groups_allow(hub_factory, alt_image):
    hub = hub_factory(PROFILES)
    hub.api("POST", "users", json={"usernames": ["rita", "olga"]})
    hub.api("POST", "groups/research", json={"users": ["rita"]})

    rita, olga = Browser(hub), Browser(hub)
    assert rita.login("rita", hub.user_password).status_code == 302
    assert olga.login("olga", hub.user_password).status_code == 302
    rita_form = rita.get("hub/spawn/rita").text
    olga_form = olga.get("hub/spawn/olga").text
    assert _offered(rita_form) == ["cpu", "cpu-alt"]
    assert _offered(olga_form) == ["cpu"]
    assert "Secret project" not in rita_form + olga_form
    # Markup in the admin's description is shown as text, never rendered.
    assert "Small &lt;b&gt;CPU&lt;/b&gt; box" in olga_form
    # The default is preselected.
    assert re.search(r'value="cpu"[^>]*checked', olga_form)


def test_html_form_starts_the_chosen_profile_and_a_new_choice_runs_the_new_image(
    hub_factory, docker_client, alt_image
):
    hub = hub_factory(PROFILES)
    hub_factory.volumes.append("cudaspawner-home-rita")
    hub.api("POST", "users", json={"usernames": ["rita"]})
    hub.api("POST", "groups/research", json={"users": ["rita"]})
    browser = Browser(hub)
    assert browser.login("rita", hub.user_password).status_code == 302

    r = browser.submit_form("rita", {"profile": "cpu"})
    assert r.status_code == 302, r.text[:2000]
    hub.wait_ready("rita")
    c = container_of(docker_client, "rita")
    assert c.attrs["Config"]["Image"] == "cudaspawner/cpu:latest"
    host = c.attrs["HostConfig"]
    assert host["NanoCpus"] == 1_500_000_000 or host["CpuQuota"] == 150_000
    assert host["Memory"] == 1536 * 1024**2
    assert host["ShmSize"] == 512 * 1024**2
    env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
    assert env["TEAM"] == "everyone" and env["NVIDIA_VISIBLE_DEVICES"] == "void"
    # The admin sees the choice.
    assert hub.api("GET", "users/rita").json()["servers"][""]["user_options"] == {"profile": "cpu"}

    hub.api("DELETE", "users/rita/server")
    hub.wait_stopped("rita")
    # The form now preselects the last choice.
    assert re.search(r'value="cpu"[^>]*checked', browser.get("hub/spawn/rita").text)
    r = browser.submit_form("rita", {"profile": "cpu-alt"})
    assert r.status_code == 302, r.text[:2000]
    hub.wait_ready("rita")
    assert container_of(docker_client, "rita").attrs["Config"]["Image"] == ALT_IMAGE
    hub.api("DELETE", "users/rita/server")
    hub.wait_stopped("rita")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"profile": "nope"}, "The profile 'nope' is not offered"),
        ({"profile": "secret"}, "The profile 'secret' is not offered"),  # hidden == unknown
        ({"profile": "cpu", "gpus-cpu": "many"}, "whole number"),
        ({"profile": "<script>alert(1)</script>"}, "&lt;script&gt;"),
    ],
)
def test_bad_form_post_gets_400_with_message_and_creates_nothing(
    refusing_hub, docker_client, fields, expected
):
    hub = refusing_hub
    browser = Browser(hub)
    assert browser.login("olga", hub.user_password).status_code == 302
    r = browser.submit_form("olga", fields)
    assert r.status_code == 400
    assert expected in (r.text if "&lt;" in expected else html.unescape(r.text))
    assert "<script>alert(1)</script>" not in r.text
    assert hub_containers(docker_client, hub) == []
    assert not docker_client.volumes.list(filters={"name": f"{TEST_PREFIX}-home-olga"})


def test_bad_api_request_is_400_with_the_fields_message(refusing_hub, docker_client):
    hub = refusing_hub
    browser = Browser(hub)
    assert browser.login("olga", hub.user_password).status_code == 302
    r = browser.spawn("olga", {"profile": "cpu", "gpus": -1, "colour": "red"})
    assert r.status_code == 400
    assert "colour" in r.json()["message"]
    r = browser.spawn("olga", {"profile": "cpu", "gpus": 2})
    assert r.status_code == 400
    assert "gpus" in r.json()["message"].lower()
    assert hub_containers(docker_client, hub) == []


def test_a_broken_profile_list_stops_the_hub_naming_profile_and_field(hub_factory):
    hub = hub_factory(
        'c.CUDADockerSpawner.profiles = [{"display_name": "GPU", "gpus": -2}]', start=False
    )
    with pytest.raises(RuntimeError, match="exited") as failure:
        hub.start(timeout=30)
    message = str(failure.value)
    assert "profiles" in message and "GPU" in message and "gpus" in message
    assert "cannot be negative" in message


def test_spawn_url_with_a_query_starts_the_profile_or_answers_400_with_the_sentence(
    hub_factory, docker_client, alt_image
):
    hub = hub_factory(PROFILES)
    hub_factory.volumes.append("cudaspawner-home-olga")
    browser = Browser(hub)
    assert browser.login("olga", hub.user_password).status_code == 302
    for query, says in [
        ("profile=nope", "The profile 'nope' is not offered"),
        ("opt-profile=secret", "The profile 'secret' is not offered"),
        ("profile=cpu&gpus=two", "whole number"),
    ]:
        r = browser.get(f"hub/spawn/olga?{query}", allow_redirects=False)
        assert r.status_code == 400, (query, r.status_code, r.text[:500])
        assert says in html.unescape(r.text), query
        # A sentence, never a Python error: no traceback, no exception class name.
        assert not re.search(r"Traceback|\w+Error\b", html.unescape(r.text)), [
            line for line in r.text.splitlines() if re.search(r"Traceback|\w+Error", line)
        ]
        assert hub_containers(docker_client, hub) == []

    r = browser.get("hub/spawn/olga?profile=cpu", allow_redirects=False)
    assert r.status_code == 302, r.text[:2000]
    hub.wait_ready("olga")
    assert container_of(docker_client, "olga").attrs["Config"]["Image"] == "cudaspawner/cpu:latest"
    assert hub.api("GET", "users/olga").json()["servers"][""]["user_options"] == {"profile": "cpu"}
    hub.api("DELETE", "users/olga/server")
    hub.wait_stopped("olga")
