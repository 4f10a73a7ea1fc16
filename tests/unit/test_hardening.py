"""Container hardening as data: what lands in Docker's create and host config."""

from __future__ import annotations

import pytest

from spawner.planning.hardening import Hardening, RootUserRefused, resolve_container_user


def test_default_hardening_drops_every_capability_and_privilege_escalation():
    config = Hardening().host_config()
    assert config["cap_drop"] == ["ALL"]
    assert config["security_opt"] == ["no-new-privileges"]
    assert config["pids_limit"] == 4096
    assert config["shm_size"] == "2g"
    assert "cap_add" not in config


def test_admin_can_relax_each_setting_explicitly():
    config = Hardening(
        cap_drop=(),
        cap_add=("SYS_PTRACE",),
        no_new_privileges=False,
        pids_limit=None,
        shm_size=None,
    ).host_config()
    assert config == {"cap_add": ["SYS_PTRACE"]}


@pytest.mark.parametrize(
    ("configured", "image_user", "expected"),
    [
        ("", "", "1000:100"),  # image runs as root by default: never keep that
        ("", "root", "1000:100"),
        ("", "0:0", "1000:100"),
        ("", "jovyan", "jovyan"),  # the image's own non-root user is kept
        ("", "1000:100", "1000:100"),
        ("2000:2000", "jovyan", "2000:2000"),  # the admin's choice wins
    ],
)
def test_container_user_is_never_root_by_default(configured, image_user, expected):
    assert resolve_container_user(configured, image_user, allow_root=False) == expected


@pytest.mark.parametrize("configured", ["0", "root", "0:100", "root:root"])
def test_root_is_refused_unless_explicitly_allowed(configured):
    with pytest.raises(RootUserRefused, match="allow_root"):
        resolve_container_user(configured, "", allow_root=False)
    assert resolve_container_user(configured, "", allow_root=True) == configured
