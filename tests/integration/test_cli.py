"""The admin CLI: who holds which GPU, read from container labels on the real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from spawner.admin.gpus_cli import build_report, render_json, render_table
from spawner.gpu.allocator import Gpu
from spawner.gpu.labels import GPUS_LABEL, USER_LABEL, container_labels

IMAGE = "cudaspawner/debian:bookworm"
SINCE = "2025-01-31T09:15:00Z"


def listed(name: str, state: str, labels: dict) -> dict:
    """A container as the engine's list call returns it."""
    return {"Id": uuid.uuid4().hex * 2, "Names": [f"/{name}"], "State": state, "Labels": labels}


def labels_for(user: str, server: str, gpus: list[str]) -> dict:
    return container_labels(user=user, server=server, gpus=gpus, since=SINCE, profile="torch")


# --- the report, from data ----------------------------------------------------------------


def test_report_shows_holders_models_and_free_gpus():
    inventory = [Gpu(0, "0", "H100"), Gpu(1, "1", "H100"), Gpu(2, "2", "L4")]
    containers = [
        listed("jupyter-alice", "running", labels_for("alice", "alice", ["1"])),
        listed("jupyter-bob", "exited", labels_for("bob", "bob", ["2"])),
    ]
    report = build_report(containers, inventory)
    rows = [(r.gpu, r.model, r.user, r.container, r.since, r.status) for r in report.rows]
    assert rows == [
        ("0", "H100", "-", "-", "-", "free"),
        ("1", "H100", "alice", "jupyter-alice", SINCE, "running"),
        ("2", "L4", "bob", "jupyter-bob", SINCE, "exited"),
        ("2", "L4", "-", "-", "-", "free"),  # an exited container holds no GPU
    ]
    assert [g.id for g in report.free] == ["0", "2"]
    table = render_table(report)
    assert table.splitlines()[0].split() == [
        "GPU", "MODEL", "USER", "SERVER", "CONTAINER", "SINCE", "STATUS"
    ]  # fmt: skip
    assert table.splitlines()[-1] == "2 of 3 GPUs free: 0, 2."


def test_report_marks_double_claims_and_gpus_the_inventory_lacks():
    containers = [
        listed("jupyter-alice", "running", labels_for("alice", "alice", ["0"])),
        listed("jupyter-bob", "running", labels_for("bob", "bob", ["0", "9"])),
    ]
    report = build_report(containers, [Gpu(0, "0"), Gpu(1, "1")])
    status = {(r.container, r.gpu): r.status for r in report.rows}
    assert status[("jupyter-alice", "0")] == "running (conflict)"
    assert status[("jupyter-bob", "0")] == "running (conflict)"
    assert status[("jupyter-bob", "9")] == "running (not in inventory)"
    assert [g.id for g in report.free] == ["1"]


def test_report_without_inventory_lists_holders_and_says_how_to_see_free_gpus():
    report = build_report([listed("c", "running", labels_for("a", "a", ["GPU-x"]))], None)
    assert report.free is None
    assert [(r.gpu, r.model) for r in report.rows] == [("GPU-x", "-")]
    assert "1 GPU held. Give --inventory" in render_table(report)
    assert json.loads(render_json(report))["free"] is None


def test_report_names_containers_with_unreadable_labels():
    bad = listed("jupyter-eve", "running", {GPUS_LABEL: "0,,1", USER_LABEL: "eve"})
    report = build_report([bad], [Gpu(0, "0")])
    assert report.problems == (
        f"container jupyter-eve: label {GPUS_LABEL}='0,,1' is not a comma list of GPU ids; ignored",
    )
    assert [r.status for r in report.rows] == ["free"]


# --- the command, against the real engine -----------------------------------------------


def run_cli(*args: str, env: dict | None = None, script: bool = False):
    command = (
        [str(Path(sys.executable).parent / "cudaspawner-gpus")]
        if script
        else [sys.executable, "-m", "spawner", "gpus"]
    )
    return subprocess.run(
        command + list(args),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.fixture
def labelled_containers(docker_client):
    """Containers labelled as the hub labels them, with GPU ids unique to this test."""
    token = uuid.uuid4().hex[:8]
    made = []

    def make(name: str, labels: dict, start: bool = True):
        c = docker_client.containers.create(
            IMAGE, ["sleep", "60"], name=f"{name}-{token}", labels=labels
        )
        made.append(c)
        if start:
            c.start()
        return c

    make.token = token
    try:
        yield make
    finally:
        for c in made:
            try:
                c.remove(force=True)
            except Exception as e:  # already gone is fine; anything else is worth a line
                print(f"could not remove {c.name}: {e}")


@pytest.mark.docker
def test_cli_shows_which_user_holds_which_gpu_since_when(labelled_containers):
    t = labelled_containers.token
    gpu = [f"GPU-{t}-{i}" for i in range(3)]
    inventory = json.dumps([{"id": g, "name": "NVIDIA H100"} for g in gpu])
    alice, bob = f"alice{t}", f"bob{t}"
    labelled_containers("jupyter-alice", labels_for(alice, f"{alice}/big", gpu[:2]))
    # Created but never started: it names a GPU but does not hold it.
    labelled_containers("jupyter-bob", labels_for(bob, bob, gpu[2:]), start=False)
    broken = labelled_containers("jupyter-eve", {GPUS_LABEL: f"{gpu[0]},,", USER_LABEL: "eve"})

    result = run_cli("--json", "--inventory", inventory)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    mine = [r for r in out["gpus"] if r["gpu"] in gpu]
    assert [(r["gpu"], r["user"], r["server"], r["status"]) for r in mine] == [
        (gpu[0], alice, f"{alice}/big", "running"),
        (gpu[1], alice, f"{alice}/big", "running"),
        (gpu[2], bob, bob, "created"),
        (gpu[2], "-", "-", "free"),
    ]
    assert {r["container"] for r in mine[:2]} == {f"jupyter-alice-{t}"}
    assert all(r["since"] == SINCE for r in mine[:3])
    assert all(r["model"] == "NVIDIA H100" for r in mine)
    assert out["free"] == [gpu[2]]
    assert out["total"] == 3
    assert any(p.startswith(f"container {broken.name}:") for p in out["problems"])

    # The console script, inventory from the environment, as a table.
    result = run_cli(script=True, env={"CUDASPAWNER_GPU_INVENTORY": inventory})
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line}
    assert lines[gpu[0]] == [
        gpu[0], "NVIDIA", "H100", alice, f"{alice}/big", f"jupyter-alice-{t}", SINCE, "running"
    ]  # fmt: skip
    assert result.stdout.splitlines()[-1] == f"1 of 3 GPUs free: {gpu[2]}."
    assert f"warning: container {broken.name}:" in result.stderr


@pytest.mark.docker
def test_cli_without_inventory_still_lists_holders(labelled_containers):
    t = labelled_containers.token
    labelled_containers("jupyter-carol", labels_for(f"carol{t}", f"carol{t}", [f"GPU-{t}"]))
    result = run_cli(env={"CUDASPAWNER_GPU_INVENTORY": ""})
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if f"GPU-{t}" in line)
    assert f"carol{t}" in row and "running" in row
    assert "Give --inventory" in result.stdout.splitlines()[-1]


@pytest.mark.docker
def test_cli_ignores_containers_stopped_after_the_hub_labelled_them(labelled_containers):
    t = labelled_containers.token
    c = labelled_containers("jupyter-dan", labels_for(f"dan{t}", f"dan{t}", [f"GPU-{t}"]))
    c.kill()
    result = run_cli("--json", "--inventory", json.dumps([f"GPU-{t}"]))
    out = json.loads(result.stdout)
    assert out["free"] == [f"GPU-{t}"]
    assert [r["status"] for r in out["gpus"] if r["gpu"] == f"GPU-{t}"] == ["exited", "free"]


def test_cli_says_in_one_line_when_the_engine_is_unreachable(tmp_path):
    result = run_cli(env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "Cannot reach the Docker engine" in result.stderr
    assert "no-engine.sock" in result.stderr


def test_cli_rejects_a_bad_inventory_in_one_line():
    result = run_cli("--inventory", '["gpu0"]')
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "python -m spawner gpus: GPU inventory entry 0 ('gpu0') is neither a GPU index "
        "(0, 1, ...) nor a UUID (GPU-...)."
    )


def test_python_m_spawner_names_its_commands():
    result = subprocess.run(
        [sys.executable, "-m", "spawner", "users"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "unknown command 'users'" in result.stderr


def test_cli_without_the_docker_sdk_says_what_to_install(tmp_path):
    (tmp_path / "docker.py").write_text("raise ImportError('no docker-py here')\n")
    result = run_cli(env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "python -m spawner gpus: The Docker SDK for Python is not installed: "
        "pip install 'cudaspawner[hub]'."
    )
