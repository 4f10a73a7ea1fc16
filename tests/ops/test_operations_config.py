"""configure_operations: what the default deployment registers, and its refusals."""

from __future__ import annotations

import json
import sys

import pytest
from traitlets.config import Config

from spawner.environment import SettingError, read_environment
from spawner.services.operations import CULLER_SCOPES, SERVICE_SCOPES, configure_operations


def _config(**reclaim) -> Config:
    c = Config()
    c.JupyterHub.bind_url = "https://:8443"
    c.JupyterHub.services = [{"name": "site-service", "api_token": "x"}]
    c.JupyterHub.load_roles = [{"name": "site-role", "services": ["site-service"]}]
    c.CUDADockerSpawner.gpu_inventory = ["GPU-a", "GPU-b"]
    for key, value in reclaim.items():
        c.GpuReclaim[key] = value
    return c


def test_service_culler_and_roles_are_added_to_the_sites_own(tmp_path):
    c = _config(exempt_groups=["staff"])
    configure_operations(c, tmp_path, env=read_environment({"CUDASPAWNER_ADMIN_PAGE_PORT": "9123"}))
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ["site-service", "gpu-admin", "idle-culler"]
    service = c.JupyterHub.services[1]
    assert service["url"] == "http://127.0.0.1:9123"
    assert service["command"][1:] == ["-m", "spawner.services"]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["cudaspawner-operations"]["scopes"] == SERVICE_SCOPES
    assert roles["idle-culler"]["scopes"] == CULLER_SCOPES and "site-role" in roles
    culler = c.JupyterHub.services[2]["command"]
    # Started through log_redaction: its log is the hub's, and holds no secret.
    assert culler[:4] == [
        sys.executable,
        "-m",
        "spawner.host.log_redaction",
        "jupyterhub_idle_culler",
    ]
    assert "--timeout=3600" in culler
    settings = json.loads((tmp_path / "operations.json").read_text())
    assert settings["proxy_url"] == "https://127.0.0.1:8443"
    assert settings["inventory"] == ["GPU-a", "GPU-b"]
    assert settings["reclaim"]["exempt_groups"] == ["staff"]
    assert (tmp_path / "operations.json").stat().st_mode & 0o077 == 0


def test_environment_turns_the_culler_off_json_logs_on_and_reclaim_off(tmp_path):
    c = _config()
    env = {"CUDASPAWNER_IDLE_TIMEOUT": "off", "CUDASPAWNER_JSON_LOGS": "1",
           "CUDASPAWNER_GPU_RECLAIM": "0"}  # fmt: skip
    configure_operations(c, tmp_path, env=read_environment(env))
    assert [s["name"] for s in c.JupyterHub.services] == ["site-service", "gpu-admin"]
    assert c.JupyterHub.logging_config["handlers"]["console"]["formatter"] == "json"
    assert json.loads((tmp_path / "operations.json").read_text())["reclaim"]["enabled"] is False
    assert c.JupyterHub.services[1]["environment"]["CUDASPAWNER_JSON_LOGS"] == "1"


def test_a_bad_reclaim_policy_stops_the_hub_with_a_sentence(tmp_path):
    reclaim = {"policies": {"*": {"idle_after": -5, "warn_for": 60}}}
    with pytest.raises(SystemExit) as raised:
        configure_operations(_config(**reclaim), tmp_path, env=read_environment({}))
    assert "positive number" in str(raised.value)
    assert str(raised.value).startswith("cudaspawner: ")


def test_a_bad_idle_timeout_is_refused_with_its_name():
    with pytest.raises(SettingError, match="CUDASPAWNER_IDLE_TIMEOUT='an hour' is not a number"):
        read_environment({"CUDASPAWNER_IDLE_TIMEOUT": "an hour"})
