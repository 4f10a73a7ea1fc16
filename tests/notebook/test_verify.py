"""GPU verification: the real worker on this CPU-only machine, and every way a run can go wrong.

The faults (timeout, crash, garbage output) come from a stand-in worker interpreter
(``faulty_python`` beside this file, set as ``verify_python``), so the server's handling is shown
for real while the shipped worker carries no test switch.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from nbextension.verify import parse_worker_output, run_worker, summarize
from nbextension.verify_worker import PREFIX

VERIFY = "api/gpu/v1/verify"
FAULTY_PYTHON = str(Path(__file__).with_name("faulty_python"))
VERIFY_KEYS = {
    "state", "started_at", "finished_at", "summary", "message", "checks", "versions",
    "next_run_allowed_at",
}  # fmt: skip


@pytest.fixture
def finished_verification(fetch_json):
    async def wait(timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            _, document = await fetch_json(VERIFY)
            if document["state"] == "done" or time.monotonic() > deadline:
                return document
            await asyncio.sleep(0.1)

    return wait


def by_id(document: dict) -> dict[str, dict]:
    return {check["id"]: check for check in document["checks"]}


async def test_before_any_run_the_state_is_never_run(fetch_json):
    code, document = await fetch_json(VERIFY)
    assert code == 200 and set(document) == VERIFY_KEYS
    assert document["state"] == "never_run" and document["summary"] is None
    assert document["checks"] == [] and document["next_run_allowed_at"] is None
    assert document["versions"] == {"torch": None, "cuda": None, "cudnn": None, "nccl": None}


@pytest.mark.gpu_server(verify_at_start=True)
async def test_start_up_verification_on_a_cpu_image_says_no_gpu(fetch_json, finished_verification):
    # The server answers while the worker runs: start-up verification runs in the background.
    code, early = await fetch_json(VERIFY)
    assert code == 200 and early["state"] == "running" and early["started_at"] is not None
    document = await finished_verification()
    assert document["state"] == "done"
    assert document["summary"] == "no_gpu", document
    assert document["message"] == "No GPU is assigned to this server; PyTorch works on the CPU."
    checks = by_id(document)
    assert checks["torch"]["status"] == "pass"
    # The torch installed: torch.__version__ carries the build's local tag (2.9.1+cu128 for
    # PyPI's CUDA build, which the tests use where no CPU build is at hand); its package
    # metadata does not.
    assert document["versions"]["torch"].split("+")[0] == version("torch").split("+")[0]
    assert checks["cuda"]["status"] == "skipped"
    assert checks["cuda"]["reason"].startswith("No GPU is assigned to this server.")
    assert checks["cpu_matmul"]["status"] == "pass"
    assert checks["cpu_matmul"]["details"]["relative_error"] <= 1e-4
    assert checks["nccl_allreduce"]["status"] == "skipped"
    assert all(c["status"] != "fail" for c in document["checks"])
    assert document["finished_at"] >= document["started_at"]


def test_worker_fails_cuda_check_when_gpus_are_assigned_but_cuda_sees_none():
    outcome = run_worker(timeout=120, expected_gpus=2)
    assert outcome.problem is None
    cuda = next(c for c in outcome.checks if c["id"] == "cuda")
    assert cuda["status"] == "fail"
    assert cuda["reason"].startswith("2 GPU(s) are assigned but CUDA sees none")
    assert summarize(outcome.all_checks(), outcome.gpu_count)[0] == "fail"


@pytest.mark.gpu_server(
    env={"FAULTY_WORKER": "sleep"}, verify_python=FAULTY_PYTHON, verify_timeout=1.0
)
async def test_worker_that_runs_past_the_timeout_is_stopped_and_reported(
    fetch_json, finished_verification, gpu_extension
):
    code, started = await fetch_json(VERIFY, method="POST", body="")
    assert code == 202 and started["state"] == "running"
    await asyncio.sleep(0.3)
    pid = gpu_extension.verifier._process.pid
    document = await finished_verification(timeout=20)
    assert document["summary"] == "fail"
    worker = by_id(document)["worker"]
    assert worker["status"] == "fail"
    assert "did not finish within 1 seconds and was stopped" in worker["reason"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker is gone, not left running


@pytest.mark.gpu_server(env={"FAULTY_WORKER": "crash"}, verify_python=FAULTY_PYTHON)
async def test_worker_crash_is_a_failed_check_with_its_last_message(
    fetch_json, finished_verification
):
    await fetch_json(VERIFY, method="POST", body="")
    document = await finished_verification(timeout=20)
    assert document["summary"] == "fail"
    reason = by_id(document)["worker"]["reason"]
    assert "exited with status 3" in reason
    assert "simulated crash of the verification worker" in reason
    assert document["message"] == "1 of 1 checks failed: Verification process."


@pytest.mark.gpu_server(env={"FAULTY_WORKER": "garbage"}, verify_python=FAULTY_PYTHON)
async def test_worker_output_without_results_is_a_failed_check(fetch_json, finished_verification):
    await fetch_json(VERIFY, method="POST", body="")
    document = await finished_verification(timeout=20)
    reason = by_id(document)["worker"]["reason"]
    assert "ended without reporting its results" in reason
    assert "this is not what the driver expects" in reason


@pytest.mark.gpu_server(
    env={"FAULTY_WORKER": "garbage"}, verify_python=FAULTY_PYTHON, verify_min_interval=60.0
)
async def test_second_run_inside_the_interval_is_refused_with_429(
    jp_fetch, fetch_json, finished_verification
):
    assert (await fetch_json(VERIFY, method="POST", body=""))[0] == 202
    done = await finished_verification(timeout=20)
    assert done["next_run_allowed_at"] == pytest.approx(done["finished_at"] + 60.0)
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch(VERIFY, method="POST", body="")
    assert raised.value.code == 429
    body = json.loads(raised.value.response.body)
    assert body["message"].startswith("The GPU verification ran less than 60 seconds ago.")
    wait = re.search(r"It can run again in (\d+) seconds\.$", body["message"])
    assert wait and 50 <= int(wait.group(1)) <= 60  # 60 s minus the few just spent
    assert body["next_run_allowed_at"] == done["next_run_allowed_at"]
    assert 50 <= int(raised.value.response.headers["Retry-After"]) <= 61
    _, after = await fetch_json(VERIFY)
    assert after["started_at"] == done["started_at"]  # the refused request started nothing


@pytest.mark.gpu_server(
    env={"FAULTY_WORKER": "sleep"}, verify_python=FAULTY_PYTHON, verify_timeout=30.0
)
async def test_run_while_one_is_running_is_refused_with_429(jp_fetch, fetch_json):
    assert (await fetch_json(VERIFY, method="POST", body=""))[0] == 202
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch(VERIFY, method="POST", body="")
    assert raised.value.code == 429
    assert "already running" in json.loads(raised.value.response.body)["message"]


@pytest.mark.gpu_server(verify_python="/nonexistent/python3")
async def test_missing_interpreter_is_reported_not_raised(fetch_json, finished_verification):
    await fetch_json(VERIFY, method="POST", body="")
    document = await finished_verification(timeout=20)
    assert "could not start" in by_id(document)["worker"]["reason"]


def test_worker_records_are_read_between_library_chatter():
    stdout = "\n".join(
        [
            "some warning from a library",
            PREFIX
            + json.dumps(
                {
                    "kind": "check",
                    "id": "torch",
                    "title": "PyTorch",
                    "status": "pass",
                    "reason": "ok",
                }
            ),  # fmt: skip
            PREFIX + "{broken json",
            PREFIX + json.dumps({"kind": "versions", "torch": "2.11.0", "cuda": "13.0"}),
            PREFIX + json.dumps({"kind": "done", "gpu_count": 1}),
        ]
    )
    outcome = parse_worker_output(stdout)
    assert [c["id"] for c in outcome.checks] == ["torch"]
    assert outcome.checks[0]["details"] == {}
    assert outcome.versions == {"torch": "2.11.0", "cuda": "13.0", "cudnn": None, "nccl": None}
    assert outcome.gpu_count == 1


def test_summary_is_fail_if_any_check_failed_else_no_gpu_or_pass():
    ok = {"id": "torch", "title": "PyTorch", "status": "pass"}
    skipped = {"id": "nccl_allreduce", "title": "NCCL", "status": "skipped"}
    failed = {"id": "gpu0_matmul", "title": "Matrix multiply on GPU 0", "status": "fail"}
    assert summarize([ok, skipped], 2) == ("pass", "All checks passed on 2 GPUs.")
    assert summarize([ok], 1)[1] == "All checks passed on 1 GPU."
    assert summarize([ok, skipped], 0)[0] == "no_gpu"
    assert summarize([ok, failed], 0) == (
        "fail",
        "1 of 2 checks failed: Matrix multiply on GPU 0.",
    )
    no_torch = {"id": "torch", "title": "PyTorch", "status": "skipped"}
    assert summarize([no_torch], 0) == (
        "no_gpu",
        "No GPU is assigned to this server, and PyTorch is not installed.",
    )


def test_a_worker_started_as_the_server_shuts_down_is_stopped_at_once():
    # The server began stopping while the verification's worker was being started (it waits
    # for the first GPU sample first): the worker must not run on and hold the stop up.
    import subprocess
    import sys

    from nbextension.verify import Verifier

    verifier = Verifier(python=sys.executable)
    verifier.stop()
    worker = subprocess.Popen(["sleep", "60"], start_new_session=True)
    verifier._remember_process(worker)
    assert worker.wait(timeout=5) is not None


class _StandInCuda:
    """torch.cuda as a Blackwell card under an older build would answer (no GPU here)."""

    def __init__(self, warning: str = "") -> None:
        self.warning = warning

    def is_available(self) -> bool:
        import warnings

        if self.warning:
            warnings.warn(self.warning, UserWarning, stacklevel=1)
            return False
        return True

    def device_count(self) -> int:
        return 1

    def get_device_capability(self, index: int) -> tuple[int, int]:
        return (12, 0)

    def get_arch_list(self) -> list[str]:
        return ["sm_80", "sm_86", "sm_90"]


def test_the_panel_names_a_gpu_the_images_pytorch_has_no_kernels_for():
    """Issue 27: the mismatch found after start is a sentence, not CUDA's error text."""
    from types import SimpleNamespace

    from nbextension.verify_worker import kernel_mismatch

    torch = SimpleNamespace(cuda=_StandInCuda())
    error = RuntimeError("CUDA error: no kernel image is available for execution on the device")
    assert kernel_mismatch(torch, 0, error) == (
        "This image's PyTorch has no kernels for GPU 0's sm_120 (it was built for "
        "sm_80 sm_86 sm_90); pick an image built for this GPU."
    )
    assert kernel_mismatch(torch, 0, RuntimeError("CUDA out of memory")) is None


def test_a_driver_too_old_for_the_image_is_named_when_cuda_sees_no_gpu():
    from types import SimpleNamespace

    from nbextension.verify_worker import cuda_device_count

    old = "CUDA initialization: The NVIDIA driver on your system is too old (found version 11040)."
    assert cuda_device_count(SimpleNamespace(cuda=_StandInCuda(old))) == (0, old)
    assert cuda_device_count(SimpleNamespace(cuda=_StandInCuda())) == (1, "")
