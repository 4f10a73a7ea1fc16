"""The one client our services use for the hub's REST API, against a real HTTP server that
answers as the hub does."""

from __future__ import annotations

import json

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from spawner.services.hub_api import HubApi, HubApiError


class _Hub(web.RequestHandler):
    seen: list = []

    def _answer(self, path: str) -> None:
        raw = self.request.path.removeprefix("/hub/api/")  # as sent, before tornado decodes
        self.seen.append((self.request.method, raw, self.request.headers.get("Authorization")))
        if path == "users/alice":
            self.write({"name": "alice", "created": "2026-12-04T09:00:00Z"})
        elif path == "users/alice/server" and self.request.method == "POST":
            self.set_status(400)
            self.write({"status": 400, "message": "alice is already running"})
        elif path == "users/bob/server":
            self.set_status(403)
            self.write({"status": 403, "message": "bob is over the GPU quota"})
        else:
            self.set_status(404)
            self.write({"status": 404, "message": "Not found"})

    def get(self, path):
        self._answer(path)

    def post(self, path):
        self._answer(path)


@pytest.fixture
async def hub():
    sock, port = bind_unused_port()
    server = HTTPServer(web.Application([(r"/hub/api/(.*)", _Hub)]))
    server.add_sockets([sock])
    _Hub.seen = []
    api = HubApi(f"http://127.0.0.1:{port}/hub/api", "service-token", timeout=5)
    yield api
    api.close()
    server.stop()


async def test_a_user_is_read_with_the_services_token_and_a_missing_one_is_none(hub):
    assert (await hub.user("alice"))["created"] == "2026-12-04T09:00:00Z"
    assert await hub.user("nobody") is None
    # A name is one path segment, whatever it holds.
    assert await hub.user("a/b") is None
    assert ("GET", "users/a%2Fb", "token service-token") in _Hub.seen


async def test_a_server_already_running_is_no_failure_and_a_refusal_carries_the_hubs_sentence(hub):
    await hub.start_server("alice")
    with pytest.raises(HubApiError) as refused:
        await hub.start_server("bob")
    assert refused.value.code == 403
    assert refused.value.hub_message == "bob is over the GPU quota"


async def test_an_unreachable_hub_is_the_same_error_with_no_code():
    api = HubApi("http://127.0.0.1:9/hub/api", "t", timeout=2)
    with pytest.raises(HubApiError) as failed:
        await api.user("alice")
    assert failed.value.code is None and "GET users/alice" in str(failed.value)
    api.close()


def test_the_hub_message_is_read_only_from_a_json_object():
    from spawner.services.hub_api import _hub_message

    assert _hub_message(json.dumps({"message": "no"}).encode()) == "no"
    assert _hub_message(b"<html>") == "" and _hub_message(b"[1]") == ""
    assert _hub_message(json.dumps({"message": {"x": 1}}).encode()) == ""
