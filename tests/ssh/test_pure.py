"""Which container a session may enter, Docker's stream framing, the hub config entries."""

from __future__ import annotations

import struct
from pathlib import Path

from spawner.gpu.labels import SERVER_LABEL, USER_LABEL
from spawner.ssh.docker_exec import FrameDecoder
from spawner.ssh.hub_config import configure_ssh, public_hub_url, ssh_service
from spawner.ssh.target import choose_container


def _attrs(user="alice", server="alice", running=True, container_user="1000:100"):
    return {
        "Id": "c0ffee",
        "Name": "/jupyter-alice",
        "State": {"Running": running},
        "Config": {
            "User": container_user,
            "Env": ["HOME=/home/jovyan", "NVIDIA_VISIBLE_DEVICES=GPU-a"],
            "Labels": {USER_LABEL: user, SERVER_LABEL: server},
        },
    }


READY = {"servers": {"": {"ready": True}}}


def test_the_users_own_running_container_is_entered_as_its_user_in_home():
    target, why = choose_container("alice", READY, _attrs())
    assert why == "" and target is not None
    assert (target.container_id, target.user, target.home) == ("c0ffee", "1000:100", "/home/jovyan")
    assert target.env["NVIDIA_VISIBLE_DEVICES"] == "GPU-a"


def test_a_container_labelled_for_someone_else_is_never_entered():
    assert choose_container("alice", READY, _attrs(user="bob", server="bob")) == (
        None,
        "container labels name another user",
    )
    # A named server's container is not the default server's.
    assert choose_container("alice", READY, _attrs(server="alice/big"))[0] is None


def test_no_server_starting_stopped_and_root_are_told_apart():
    assert choose_container("alice", {"servers": {}}, None) == (None, "no server")
    starting = {"servers": {"": {"ready": False}}}
    assert choose_container("alice", starting, None) == (None, "starting")
    assert choose_container("alice", READY, None) == (None, "no container")
    assert choose_container("alice", READY, _attrs(running=False))[1] == "container not running"
    for root in ("", "0", "root", "0:0"):
        assert choose_container("alice", READY, _attrs(container_user=root))[1] == (
            "container runs as root"
        )


def _frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(data)) + data


def test_frames_split_across_reads_come_out_whole_and_in_order():
    stream = _frame(1, b"out") + _frame(2, b"err!") + _frame(1, b"")
    decoder = FrameDecoder()
    got = []
    for i in range(len(stream)):
        got += decoder.feed(stream[i : i + 1])
    assert got == [(1, b"out"), (2, b"err!"), (1, b"")]


def test_the_service_entry_runs_the_gateway_with_least_scopes(tmp_path):
    service, role = ssh_service(tmp_path, "https://hub.example:8443/", ssh_port=2200, page_port=9)
    assert service["url"] == "http://127.0.0.1:9" and service["name"] == "ssh"
    assert "--SshGatewayApp.ssh_port=2200" in service["command"]
    assert "servers" not in role["scopes"] and "admin:server_state" in role["scopes"]
    _, with_start = ssh_service(tmp_path, "/", auto_start=True, page_port=9)
    assert "servers" in with_start["scopes"]


def test_configure_ssh_keeps_the_sites_services_and_can_be_turned_off(tmp_path, monkeypatch):
    from traitlets.config import Config

    c = Config()
    c.JupyterHub.services = [{"name": "site", "api_token": "x"}]
    monkeypatch.setenv("CUDASPAWNER_SSH_PORT", "2299")
    configure_ssh(c, Path(tmp_path), "http://127.0.0.1:8000")
    assert [s["name"] for s in c.JupyterHub.services] == ["site", "ssh"]
    assert [r["name"] for r in c.JupyterHub.load_roles] == ["user", "ssh-gateway"]
    # Every user may open the keys page (the hub's OAuth asks for this scope).
    assert c.JupyterHub.load_roles[0]["scopes"] == ["self", "access:services!service=ssh"]
    assert c.CUDADockerSpawner.ssh_key_store == str(Path(tmp_path) / "ssh-keys.sqlite")
    off = Config()
    monkeypatch.setenv("CUDASPAWNER_SSH", "0")
    configure_ssh(off, Path(tmp_path), "http://127.0.0.1:8000")
    assert "services" not in off.JupyterHub


def test_a_sites_own_user_role_keeps_its_scopes_and_gains_the_keys_page():
    from spawner.ssh.hub_config import with_user_scope

    roles = [{"name": "user", "scopes": ["self", "read:groups"]}, {"name": "x", "scopes": []}]
    got = with_user_scope(roles, "access:services!service=ssh")
    assert got[0]["scopes"] == ["self", "read:groups", "access:services!service=ssh"]
    assert roles[0]["scopes"] == ["self", "read:groups"]  # the site's list is not changed


def test_public_hub_url_names_this_host_when_the_bind_url_has_none():
    assert public_hub_url("https://hub.example:8443") == "https://hub.example:8443/"
    assert public_hub_url("https://:8443").endswith(":8443/")
    assert "://:" not in public_hub_url("https://:8443")
