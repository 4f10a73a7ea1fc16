"""The owner's GPU-hours on a real jupyter_server (issue 26): what the hub's operations
service sends reaches the status document the GPU panel reads; a bad body is a 400 with a
sentence and changes nothing; a stranger can neither read nor set it."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

from tests.notebook.test_api import AUTH

USAGE = "api/gpu/v1/usage"


async def test_the_figures_the_service_sends_reach_the_status(fetch_json, sampled_status):
    assert (await sampled_status())["usage"] is None  # nothing sent yet
    body = {"week_hours": 1.25, "month_hours": 10.5, "warnings": ["You have used 9.0 of 10."]}
    code, usage = await fetch_json(USAGE, method="POST", body=json.dumps(body))
    assert code == 200 and usage["week_hours"] == 1.25 and usage["updated_at"] > 0
    shown = (await sampled_status({"history": "0"}))["usage"]
    assert {k: shown[k] for k in body} == body


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        ("not json", "must be a JSON object"),
        (json.dumps({"week_hours": -1}), "week_hours must be a number of GPU-hours"),
        (json.dumps({"month_hours": "lots"}), "month_hours must be a number of GPU-hours"),
        (json.dumps({"week_hours": 1, "script": "x"}), "Unknown fields in the usage"),
        (json.dumps({"warnings": ["x" * 301]}), "at most 300 characters"),
        (json.dumps({"warnings": ["a"] * 6}), "at most 5 sentences"),
    ],
)
async def test_a_bad_body_is_a_400_with_a_sentence_and_changes_nothing(
    jp_fetch, fetch_json, body, sentence
):
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch(USAGE, method="POST", body=body)
    assert raised.value.code == 400
    assert sentence in json.loads(raised.value.response.body)["message"]
    code, usage = await fetch_json(USAGE)
    assert code == 200 and usage is None


@pytest.mark.gpu_server(server=AUTH)
async def test_a_user_without_the_gpu_permission_can_neither_read_nor_set_it(jp_fetch):
    bob = {"Authorization": "token bob-token"}
    for method, body in (("GET", None), ("POST", "{}")):
        with pytest.raises(HTTPClientError) as raised:
            await jp_fetch(USAGE, method=method, body=body, headers=bob)
        assert raised.value.code == 403, method
