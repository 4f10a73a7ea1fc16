"""The REST API on a real jupyter_server with the simulated backend (non-default base URL)."""

from __future__ import annotations

import json
import os

import pytest
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import HTTPClientError

from tests.notebook.simulated_gpus import two_gpus

STATUS = "api/gpu/v1/status"
VERIFY = "api/gpu/v1/verify"
GPU_FIELDS = {
    "index", "uuid", "name", "utilization_gpu", "utilization_memory", "memory_used",
    "memory_total", "temperature", "power_draw", "power_limit", "clock_sm", "clock_memory",
    "fan", "pcie_generation", "pcie_width", "mig", "processes", "foreign_processes",
    "slice_of",
}  # fmt: skip


async def test_status_reports_the_simulated_gpus(sampled_status):
    status = await sampled_status()
    assert set(status) == {
        "state", "message", "backend", "driver_version", "cuda_driver_version",
        "sampled_at", "interval", "gpus", "history", "reclaim", "usage",
    }  # fmt: skip
    assert status["state"] == "ok" and status["backend"] == "simulated"
    assert (status["driver_version"], status["cuda_driver_version"]) == ("550.54.15", "12.4")
    assert status["interval"] == 0.2
    expected = two_gpus()["gpus"]
    assert len(status["gpus"]) == len(expected)
    for gpu, described in zip(status["gpus"], expected, strict=True):
        assert set(gpu) == GPU_FIELDS
        for name in GPU_FIELDS - {"processes", "foreign_processes", "mig", "slice_of"}:
            assert gpu[name] == described[name], name
        assert gpu["slice_of"] is None
    uuid = expected[0]["uuid"]
    assert status["history"][uuid]["utilization_gpu"][-1] == expected[0]["utilization_gpu"]


async def test_history_zero_omits_the_history(sampled_status):
    status = await sampled_status(params={"history": "0"})
    assert "history" not in status and status["gpus"]


async def test_status_is_never_cached_by_the_browser(jp_fetch, sampled_status):
    await sampled_status()
    response = await jp_fetch(STATUS)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"].startswith("application/json")


def _with_unsupported() -> dict:
    description = two_gpus()
    description["gpus"][1]["unsupported"] = ["temperature", "power_draw", "clock_sm", "pcie_width"]
    return description


@pytest.mark.gpu_server(description=_with_unsupported())
async def test_unsupported_fields_are_null(sampled_status):
    gpu = (await sampled_status())["gpus"][1]
    assert [gpu[k] for k in ("temperature", "power_draw", "clock_sm", "pcie_width")] == [None] * 4
    assert gpu["fan"] is None  # null in the description itself
    assert gpu["memory_total"] == two_gpus()["gpus"][1]["memory_total"]


INIT_FAILURES = ["library_not_found", "driver_not_loaded", "no_devices", "no_permission", "error"]


@pytest.mark.parametrize(
    "gpu_marker",
    [{"description": {"init_error": state}} for state in INIT_FAILURES],
    ids=INIT_FAILURES,
    indirect=True,
)
async def test_each_init_failure_is_a_state_with_a_sentence(gpu_marker, sampled_status):
    status = await sampled_status()
    assert status["state"] == gpu_marker["description"]["init_error"]
    assert status["gpus"] == [] and status["history"] == {}
    assert status["message"][0].isupper() and status["message"].endswith(".")
    assert status["sampled_at"] is not None


@pytest.mark.gpu_server(description={"init_error": "driver_not_loaded"})
async def test_init_failure_from_configuration(sampled_status):
    status = await sampled_status()
    assert status["state"] == "driver_not_loaded"
    assert "driver is not loaded" in status["message"]


@pytest.mark.gpu_server(env={"NVIDIA_VISIBLE_DEVICES": "void"})
async def test_void_visible_devices_says_no_gpu_is_assigned(sampled_status):
    status = await sampled_status()
    assert status["state"] == "no_gpu"
    assert status["message"] == "No GPU is assigned to this server."
    assert status["gpus"] == []


@pytest.mark.gpu_server(env={"NVIDIA_VISIBLE_DEVICES": "1"})
async def test_visible_devices_by_index_shows_only_that_gpu(sampled_status):
    gpus = (await sampled_status())["gpus"]
    assert [g["uuid"] for g in gpus] == [two_gpus()["gpus"][1]["uuid"]]


@pytest.mark.gpu_server(env={"NVIDIA_VISIBLE_DEVICES": two_gpus()["gpus"][1]["uuid"]})
async def test_visible_devices_by_uuid_shows_only_that_gpu(sampled_status):
    status = await sampled_status()
    assert [g["index"] for g in status["gpus"]] == [1]
    assert list(status["history"]) == [two_gpus()["gpus"][1]["uuid"]]


async def test_foreign_processes_are_counted_and_ours_are_listed(sampled_status):
    gpu = (await sampled_status())["gpus"][0]
    assert gpu["foreign_processes"] == {"count": 1, "memory_used": 1073741824}
    assert [p["pid"] for p in gpu["processes"]] == [os.getpid()]  # "self": the server
    assert gpu["processes"][0]["command"]


def _with_mig() -> dict:
    description = two_gpus()
    description["gpus"][0]["mig"] = [
        {"index": 0, "uuid": "MIG-1c", "name": "1g.10gb", "memory_used": 1 << 30,
         "memory_total": 10 << 30},
        {"index": 1, "uuid": "MIG-3c", "name": "3g.40gb", "memory_used": None,
         "memory_total": 40 << 30},
    ]  # fmt: skip
    return description


@pytest.mark.gpu_server(description=_with_mig())
async def test_a_gpu_in_mig_mode_lists_its_instances(sampled_status):
    gpus = (await sampled_status())["gpus"]
    assert gpus[0]["mig"] == _with_mig()["gpus"][0]["mig"] and gpus[0]["slice_of"] is None


@pytest.mark.gpu_server(description=_with_mig(), env={"NVIDIA_VISIBLE_DEVICES": "MIG-3c"})
async def test_a_server_given_a_mig_slice_shows_the_slice_not_its_gpu(sampled_status):
    """Issue 27: the slice's name and memory; NVML has no utilisation per slice, and the
    card's own figures (shared with the other slices' users) are not shown as the slice's."""
    status = await sampled_status()
    (gpu,) = status["gpus"]
    parent = _with_mig()["gpus"][0]
    assert (gpu["index"], gpu["uuid"], gpu["name"]) == (0, "MIG-3c", "3g.40gb")
    assert gpu["slice_of"] == parent["name"]
    assert (gpu["memory_used"], gpu["memory_total"]) == (None, 40 << 30)
    for name in ("utilization_gpu", "utilization_memory", "temperature", "power_draw", "clock_sm"):
        assert gpu[name] is None and parent[name] is not None, name
    assert status["history"]["MIG-3c"]["utilization_gpu"][-1] is None


async def test_request_without_token_is_forbidden(jp_fetch):
    for path, method, body in [(STATUS, "GET", None), (VERIFY, "GET", None), (VERIFY, "POST", "")]:
        with pytest.raises(HTTPClientError) as raised:
            await jp_fetch(path, method=method, body=body, headers={"Authorization": ""})
        assert raised.value.code == 403, path


class TwoUsers(IdentityProvider):
    """Token "alice-token" is alice, "bob-token" is bob; nothing else is authenticated."""

    tokens = {"token alice-token": "alice", "token bob-token": "bob"}

    def get_user(self, handler):
        name = self.tokens.get(handler.request.headers.get("Authorization", ""))
        return User(username=name) if name else None

    def is_token_authenticated(self, handler):
        # Token requests need no XSRF cookie, as with jupyter_server's own tokens.
        return handler.request.headers.get("Authorization", "") in self.tokens


class NoGpuForBob(Authorizer):
    """Everyone may do everything, except that bob may not touch the "gpu" resource."""

    def is_authorized(self, handler, user, action, resource):
        return not (user.username == "bob" and resource == "gpu")


AUTH = {"identity_provider_class": TwoUsers, "authorizer_class": NoGpuForBob}


@pytest.mark.gpu_server(server=AUTH)
async def test_user_without_the_gpu_permission_is_forbidden(jp_fetch, sampled_status):
    alice = {"Authorization": "token alice-token"}
    bob = {"Authorization": "token bob-token"}
    assert (await jp_fetch(STATUS, headers=alice)).code == 200
    assert (await jp_fetch("api/status", headers=bob)).code == 200  # bob is a valid user
    for path, method, body, verb in [
        (STATUS, "GET", None, "read"),
        (VERIFY, "GET", None, "read"),
        (VERIFY, "POST", "", "run"),
    ]:
        with pytest.raises(HTTPClientError) as raised:
            await jp_fetch(path, method=method, body=body, headers=bob)
        assert raised.value.code == 403
        message = json.loads(raised.value.response.body)["message"]
        assert message.startswith(f"You are not allowed to {verb} this server's GPU")


def _metric_samples(text: str) -> dict[tuple[str, str], tuple[float, dict]]:
    samples = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("DCGM_FI_"):
            assert family.type == "gauge"
            for sample in family.samples:
                samples[(sample.name, sample.labels["gpu"])] = (sample.value, sample.labels)
    return samples


@pytest.mark.gpu_server(description=_with_unsupported())
async def test_metrics_endpoint_exports_dcgm_gauges_of_the_simulated_gpus(jp_fetch, sampled_status):
    await sampled_status()
    samples = _metric_samples((await jp_fetch("metrics")).body.decode())
    description = _with_unsupported()["gpus"]
    mib = 1024 * 1024
    for gpu in description:
        index = str(gpu["index"])
        value, labels = samples[("DCGM_FI_DEV_GPU_UTIL", index)]
        assert value == gpu["utilization_gpu"]
        assert labels["UUID"] == gpu["uuid"] and labels["modelName"] == gpu["name"]
        assert labels["Hostname"]
        assert samples[("DCGM_FI_DEV_MEM_COPY_UTIL", index)][0] == gpu["utilization_memory"]
        assert samples[("DCGM_FI_DEV_FB_USED", index)][0] == gpu["memory_used"] // mib
        free = (gpu["memory_total"] - gpu["memory_used"]) // mib
        assert samples[("DCGM_FI_DEV_FB_FREE", index)][0] == free
        assert samples[("DCGM_FI_DEV_MEM_CLOCK", index)][0] == gpu["clock_memory"]
    assert samples[("DCGM_FI_DEV_GPU_TEMP", "0")][0] == description[0]["temperature"]
    assert samples[("DCGM_FI_DEV_POWER_USAGE", "0")][0] == description[0]["power_draw"]
    assert samples[("DCGM_FI_DEV_SM_CLOCK", "0")][0] == description[0]["clock_sm"]
    # Unsupported fields (GPU 1's temperature, power, SM clock; no fan anywhere) are absent.
    for name in ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK"):
        assert (name, "1") not in samples
    assert not any(name == "DCGM_FI_DEV_FAN_SPEED" for name, _ in samples)


async def test_metrics_of_a_stopped_server_are_removed(jp_serverapp, jp_fetch, sampled_status):
    await sampled_status()
    assert _metric_samples((await jp_fetch("metrics")).body.decode())
    jp_serverapp.web_app.settings["cudaspawner_gpu"].stop()
    assert not _metric_samples((await jp_fetch("metrics")).body.decode())


async def test_server_cleanup_stops_the_sampler_thread(jp_serverapp, sampled_status):
    await sampled_status()
    sampler = jp_serverapp.web_app.settings["cudaspawner_gpu"].sampler
    assert sampler.running
    await jp_serverapp.cleanup_extensions()
    assert not sampler.running


async def test_extension_is_listed_for_jupyter_server():
    import nbextension

    assert nbextension._jupyter_server_extension_points() == [{"module": "nbextension"}]
