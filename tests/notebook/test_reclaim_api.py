"""The idle-GPU notice on a real jupyter_server: the reclaim service's warning reaches the
status document (what the panel and the status bar read), "keep" withdraws it and is
remembered for the service, bad warnings are a 400 with a sentence, strangers get 403."""

from __future__ import annotations

import json
import time

import pytest
from tornado.httpclient import HTTPClientError

from tests.notebook.test_api import AUTH

RECLAIM = "api/gpu/v1/reclaim"
KEEP = "api/gpu/v1/reclaim/keep"


async def test_a_warning_shows_in_the_status_with_the_time_left(fetch_json, sampled_status):
    status = await sampled_status()
    assert status["reclaim"] == {"warning": None, "kept_at": None}
    stop_at = time.time() + 120
    body = {"stop_at": stop_at, "idle_seconds": 900, "message": "Idle below 5% for 15 min."}
    code, notice = await fetch_json(RECLAIM, method="POST", body=json.dumps(body))
    assert code == 200
    warning = (await sampled_status())["reclaim"]["warning"]
    assert warning["stop_at"] == stop_at and warning["message"] == body["message"]
    assert 110 < warning["seconds_left"] <= 120
    # Without history too: the reclaim service asks for the cheap form.
    assert (await sampled_status({"history": "0"}))["reclaim"]["warning"]["stop_at"] == stop_at


async def test_keep_withdraws_the_warning_and_is_remembered(fetch_json, sampled_status):
    body = json.dumps({"stop_at": time.time() + 60, "idle_seconds": 300})
    await fetch_json(RECLAIM, method="POST", body=body)
    before = time.time()
    code, notice = await fetch_json(KEEP, method="POST", body="")
    assert code == 200 and notice["warning"] is None and notice["kept_at"] >= before
    assert (await sampled_status())["reclaim"]["kept_at"] == notice["kept_at"]


async def test_the_service_can_withdraw_its_warning(fetch_json):
    await fetch_json(RECLAIM, method="POST", body=json.dumps({"stop_at": time.time() + 60}))
    code, notice = await fetch_json(RECLAIM, method="DELETE")
    assert code == 200 and notice == {"warning": None, "kept_at": None}


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        ("not json", "must be a JSON object"),
        (json.dumps({"stop_at": 5}), "stop_at must be a time in the future"),
        (json.dumps({"stop_at": "soon"}), "stop_at must be a time in the future"),
        (json.dumps({"stop_at": 9e9, "idle_seconds": -1}), "idle_seconds must be"),
        (json.dumps({"stop_at": 9e9, "shell": "rm"}), "Unknown fields in the warning"),
        (json.dumps({"stop_at": 9e9, "message": "x" * 301}), "at most 300 characters"),
    ],
)
async def test_a_bad_warning_is_a_400_with_a_sentence(jp_fetch, body, sentence):
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch(RECLAIM, method="POST", body=body)
    assert raised.value.code == 400
    assert sentence in json.loads(raised.value.response.body)["message"]


@pytest.mark.gpu_server(server=AUTH)
async def test_a_user_without_the_gpu_permission_can_neither_warn_nor_keep(jp_fetch):
    bob = {"Authorization": "token bob-token"}
    for path, method, body in [(RECLAIM, "GET", None), (RECLAIM, "POST", "{}"), (KEEP, "POST", "")]:
        with pytest.raises(HTTPClientError) as raised:
            await jp_fetch(path, method=method, body=body, headers=bob)
        assert raised.value.code == 403, path
