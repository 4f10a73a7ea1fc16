"""Fixtures for the notebook-side extension: a real jupyter_server (pytest-jupyter) with it loaded.

A test chooses the simulated GPUs, extra ``GpuMonitor`` settings and environment variables with
``@pytest.mark.gpu_server(description=..., env=..., server=..., **settings)``.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.notebook.simulated_gpus import two_gpus

GPU_ENV_VARS = (
    "NVIDIA_VISIBLE_DEVICES",
    "CUDA_VISIBLE_DEVICES",
    "CUDASPAWNER_GPU_BACKEND",
    "CUDASPAWNER_SIMULATED_GPUS",
    "FAULTY_WORKER",
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "gpu_server(description=None, env=None, server=None, **settings): the test's "
        "simulated GPUs, environment, ServerApp and GpuMonitor settings",
    )


@pytest.fixture
async def jp_asyncio_loop():
    """Serve on the loop that runs the test.

    pyproject sets pytest-asyncio's auto mode, which runs async tests on its own loop, while
    pytest-jupyter serves on ``jp_asyncio_loop``; requests would then never be answered. Handing
    pytest-jupyter the test's loop (not running between fixtures, so its ``run_until_complete``
    calls still work) makes both one loop. pytest-asyncio closes it.
    """
    return asyncio.get_running_loop()


@pytest.fixture
def jp_base_url():
    # Not "/": every URL the extension builds must carry the server's base URL.
    return "/user/gpu%40test/"


@pytest.fixture
def gpu_marker(request) -> dict:
    """The test's set-up: its gpu_server marker, or ``parametrize("gpu_marker", ..., indirect)``."""
    if hasattr(request, "param"):
        return dict(request.param)
    marker = request.node.get_closest_marker("gpu_server")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def jp_server_config(gpu_marker, monkeypatch):
    """Enable the extension with the simulated backend, unless the test's marker says otherwise."""
    settings = dict(gpu_marker)
    description = settings.pop("description", None)
    env = settings.pop("env", None) or {}
    server = settings.pop("server", None) or {}
    for name in GPU_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    gpu_monitor = {
        "backend": "simulated",
        "simulated_description": description if description is not None else two_gpus(),
        "sample_interval": 0.2,
        "verify_at_start": False,
    }
    gpu_monitor.update(settings)
    return {
        "ServerApp": {"jpserver_extensions": {"nbextension": True}, **server},
        "GpuMonitor": gpu_monitor,
    }


@pytest.fixture
def gpu_extension(jp_serverapp):
    from nbextension.handlers import SETTINGS_KEY

    return jp_serverapp.web_app.settings[SETTINGS_KEY]


@pytest.fixture
def fetch_json(jp_fetch):
    """GET/POST an API path under the base URL and decode the JSON answer."""

    async def fetch(*parts, **kwargs):
        response = await jp_fetch(*parts, **kwargs)
        return response.code, json.loads(response.body)

    return fetch


@pytest.fixture
def sampled_status(fetch_json):
    """The status document once the sampler has published its first result."""

    async def get(params: dict | None = None, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            _, status = await fetch_json("api/gpu/v1/status", params=params)
            if status["sampled_at"] is not None or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.05)

    return get
