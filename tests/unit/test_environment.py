"""The default deployment's environment variables: one table, parsed in one place, printed
in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spawner.environment import SETTINGS, SettingError, markdown_table, read_environment

ROOT = Path(__file__).resolve().parents[2]
HOST = {"host_memory": 16 * 1024**3, "host_cpus": 8}


def test_an_empty_environment_gives_the_documented_defaults():
    env = read_environment({}, **HOST)
    assert env["CUDASPAWNER_DATA"] == "/var/lib/cudaspawner"
    assert env["CUDASPAWNER_TLS"] is True and env["CUDASPAWNER_JSON_LOGS"] is False
    assert env["CUDASPAWNER_BIND_URL"] == "https://:8443"
    assert env["CUDASPAWNER_HUB_PORT"] == 8081 and env["CUDASPAWNER_IDLE_TIMEOUT"] == 3600
    assert env["CUDASPAWNER_MEM_LIMIT"] == "8G" and env["CUDASPAWNER_CPU_LIMIT"] == 4.0
    assert env["CUDASPAWNER_EXTRA_CONFIG"] == "/var/lib/cudaspawner/cudaspawner_config.py"
    assert env["CUDASPAWNER_PUBLIC_NAMES"] == []


def test_values_are_read_by_their_kind():
    env = read_environment(
        {
            "CUDASPAWNER_TLS": "off",
            "CUDASPAWNER_SSH_PORT": "2299",
            "CUDASPAWNER_IDLE_TIMEOUT": "off",
            "CUDASPAWNER_PUBLIC_NAMES": "hub.example.org, 10.0.0.5,",
            "CUDASPAWNER_MEM_LIMIT": "none",
            "CUDASPAWNER_DATA": "/srv/hub",
        },
        **HOST,
    )
    assert env["CUDASPAWNER_TLS"] is False and env["CUDASPAWNER_BIND_URL"] == "http://:8000"
    assert env["CUDASPAWNER_SSH_PORT"] == 2299 and env["CUDASPAWNER_IDLE_TIMEOUT"] is None
    assert env["CUDASPAWNER_PUBLIC_NAMES"] == ["hub.example.org", "10.0.0.5"]
    assert env["CUDASPAWNER_MEM_LIMIT"] is None
    assert env["CUDASPAWNER_EXTRA_CONFIG"] == "/srv/hub/cudaspawner_config.py"


@pytest.mark.parametrize(
    ("name", "value", "sentence"),
    [
        ("CUDASPAWNER_HUB_PORT", "80a", "CUDASPAWNER_HUB_PORT='80a' is not a port number"),
        ("CUDASPAWNER_SSH_PORT", "70000", "is not a port number (0 to 65535)"),
        ("CUDASPAWNER_AUTH", "ldap", "CUDASPAWNER_AUTH='ldap': use one of native, shared"),
        ("CUDASPAWNER_PULL_POLICY", "sometimes", "use one of never, ifnotpresent"),
        ("CUDASPAWNER_IDLE_TIMEOUT", "-5", "must be above 0"),
        ("CUDASPAWNER_CPU_LIMIT", "64", "at most this host's 8"),
        ("CUDASPAWNER_MEM_LIMIT", "lots", "is not a memory size"),
    ],
)
def test_a_bad_value_is_refused_with_a_sentence_naming_the_variable(name, value, sentence):
    with pytest.raises(SettingError) as refused:
        read_environment({name: value}, **HOST)
    assert sentence in str(refused.value)


def test_the_readme_prints_the_table():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- environment table")
    block = readme[readme.index("\n", start) + 1 : readme.index("<!-- end of environment table")]
    assert block == markdown_table()
    assert len(block.splitlines()) == len(SETTINGS) + 2


def test_no_hub_side_code_reads_a_deployment_variable_around_the_table():
    """Every CUDASPAWNER_* variable the hub side names is in the table, or is one of the
    few that are not the deployment's (the notebook side's, the container's, a service's)."""
    not_deployment = {
        "CUDASPAWNER_OPS_SETTINGS",  # the hub hands the operations service its settings file
        "CUDASPAWNER_PROFILE",  # written into a container's environment by the start plan
        "CUDASPAWNER_IMAGE_DIGEST",
    }
    names = {s.name for s in SETTINGS}
    sources = [ROOT / "jupyterhub_config.py", *sorted((ROOT / "spawner").rglob("*.py"))]
    named = set()
    for path in sources:
        named |= set(re.findall(r"CUDASPAWNER_[A-Z_]*[A-Z]", path.read_text()))
    assert named - names - not_deployment == set()
    reads = re.compile(r"environ(?:\.get)?[(\[]\s*[\"']CUDASPAWNER_")
    outside = [p for p in sources if reads.search(p.read_text()) and p.name != "environment.py"]
    assert outside == []
