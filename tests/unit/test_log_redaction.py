"""No secret reaches a log: what the hub, our services and the idle culler log is masked."""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
import textwrap

import pytest

from spawner.host.log_redaction import MASK, install, redact

TOKEN = secrets.token_hex(16)  # the shape of a JupyterHub API token or OAuth code


@pytest.mark.parametrize(
    "line",
    [
        f"GET /hub/api/user?token={TOKEN} 200",
        f"Authorization: token {TOKEN}",
        f"headers={{'Authorization': 'Bearer {TOKEN}'}}",
        f'{{"api_token": "{TOKEN}", "user": "alice"}}',
        f"CONFIGPROXY_AUTH_TOKEN={TOKEN}",
        f"password=hunter2-{TOKEN[:6]} user=alice",
        f"Cookie: jupyterhub-hub-login={TOKEN}; _xsrf=2|abc",
        f"the service's token {TOKEN} was refused",
        f"minted {TOKEN} for alice",
    ],
)
def test_a_secret_is_masked_wherever_it_stands_in_a_line(line):
    out = redact(line)
    assert TOKEN not in out and TOKEN[:6] not in out.replace("alice", ""), out
    assert MASK in out


def test_a_private_key_is_masked_whole():
    pem = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXkt\nAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----"
    )
    out = redact(f"read key:\n{pem}\ndone")
    assert "b3BlbnNzaC1rZXkt" not in out and out.endswith("done")


@pytest.mark.parametrize(
    "line",
    [
        "Created container jupyter-alice (id: 5f3a2b1c9d0e) from image cudaspawner/cpu:latest",
        "container " + "ab" * 32 + " started",  # a full container id (64 hex digits)
        "GPU-4c1f3d2e-7a8b-4c5d-9e0f-112233445566 given to alice",
        "alice holds 2 GPUs; 1 token(s) revoked",
        "hub id hub-0a1b2c3d4e5f6a7b",
    ],
)
def test_ordinary_text_is_left_as_it_is(line):
    assert redact(line) == line


def test_every_record_of_the_process_is_masked_message_and_exception(caplog):
    install()
    log = logging.getLogger("cudaspawner.test.redaction")
    with caplog.at_level(logging.INFO):
        log.info("calling the hub with %s", {"Authorization": f"token {TOKEN}"})
        try:
            raise RuntimeError(f"401 for token={TOKEN}")
        except RuntimeError:
            log.exception("call failed")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "calling the hub" in text and "call failed" in text and "RuntimeError" in text
    assert TOKEN not in text


def test_a_module_run_through_it_logs_and_crashes_without_its_secret(tmp_path):
    """The idle culler is started this way: its log lines and a crash's traceback (which once
    printed its api_token into the hub log) come out masked."""
    (tmp_path / "leaky.py").write_text(
        textwrap.dedent(
            f"""
            import logging, os
            logging.basicConfig(level=logging.INFO)
            token = "{TOKEN}"
            logging.getLogger("culler").info("api_token=%s url=https://hub/api", token)
            raise SystemExit(1) if os.environ.get("QUIET") else ValueError("bad token " + token)
            """
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "spawner.host.log_redaction", "leaky", "--timeout=5"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{tmp_path}:{_root()}", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert run.returncode == 1
    assert "url=https://hub/api" in run.stderr and "ValueError" in run.stderr, run.stderr
    assert TOKEN not in run.stdout + run.stderr


def _root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2])
