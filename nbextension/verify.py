"""GPU verification: runs :mod:`nbextension.verify_worker` in a child process and keeps the result.

The server never imports torch or touches CUDA itself. A run that times out, crashes or prints
something unreadable becomes a failed check that says so. Results are cached; a new run is
allowed ``min_interval`` seconds after the previous one finished.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .verify_worker import PREFIX

log = logging.getLogger(__name__)

NO_VERSIONS = {"torch": None, "cuda": None, "cudnn": None, "nccl": None}
WORKER_CHECK_ID = "worker"
WORKER_CHECK_TITLE = "Verification process"


@dataclass
class WorkerOutcome:
    """What a worker run produced; ``problem`` says why it did not finish normally."""

    checks: list[dict] = field(default_factory=list)
    versions: dict = field(default_factory=lambda: dict(NO_VERSIONS))
    gpu_count: int | None = None
    problem: str | None = None

    def all_checks(self) -> list[dict]:
        """The worker's checks, plus a failed check describing ``problem`` if there was one."""
        if self.problem is None:
            return list(self.checks)
        failed = {
            "id": WORKER_CHECK_ID,
            "title": WORKER_CHECK_TITLE,
            "status": "fail",
            "reason": self.problem,
            "details": {},
        }
        return [*self.checks, failed]


def parse_worker_output(stdout: str) -> WorkerOutcome:
    """Collect the worker's records from its stdout; other lines are ignored."""
    outcome = WorkerOutcome()
    for line in stdout.splitlines():
        if not line.startswith(PREFIX):
            continue
        try:
            record = json.loads(line[len(PREFIX) :])
            kind = record.pop("kind")
        except (ValueError, KeyError, AttributeError):
            continue
        if kind == "check":
            record.setdefault("details", {})
            outcome.checks.append(record)
        elif kind == "versions":
            outcome.versions = {key: record.get(key) for key in NO_VERSIONS}
        elif kind == "done":
            outcome.gpu_count = int(record.get("gpu_count", 0))
    return outcome


def _tail(text: str, limit: int = 300) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    tail = lines[-1] if lines else ""
    return tail if len(tail) <= limit else "..." + tail[-limit:]


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the worker may have spawned helpers (NCCL)
    except OSError:
        pass  # the group is already gone


def worker_command(python: str, expected_gpus: int | None, nccl_min_gpus: int = 2) -> list[str]:
    expected = -1 if expected_gpus is None else expected_gpus
    return [
        python,
        "-m",
        "nbextension.verify_worker",
        f"--expected-gpus={expected}",
        f"--nccl-min-gpus={nccl_min_gpus}",
    ]


def _lower_priority() -> None:
    os.nice(19)


def run_worker(
    python: str = sys.executable,
    timeout: float = 180.0,
    expected_gpus: int | None = None,
    nccl_min_gpus: int = 2,
    on_start: Callable[[subprocess.Popen], None] | None = None,
) -> WorkerOutcome:
    """Run the worker to completion (blocking; call it from a thread) and interpret the result."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    try:
        process = subprocess.Popen(
            worker_command(python, expected_gpus, nccl_min_gpus),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its own process group, so a timeout can stop all of it
            # The run at server start must not slow the server (or its neighbours on a busy
            # host) getting ready: importing torch is seconds of CPU. Lowest CPU priority.
            preexec_fn=_lower_priority,
        )
    except OSError as e:
        return WorkerOutcome(
            problem=f"The verification could not start: {python} failed to run ({e.strerror})."
        )
    if on_start:
        on_start(process)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(process)
        stdout, stderr = process.communicate()
        timed_out = True
    finally:
        _kill_group(process)  # leave no helper processes behind
    outcome = parse_worker_output(stdout)
    if timed_out:
        outcome.problem = (
            f"The verification did not finish within {timeout:g} seconds and was stopped. "
            "A hanging GPU or driver can cause this: restart the server and, if it happens "
            "again, tell your administrator."
        )
    elif process.returncode < 0:
        name = signal.Signals(-process.returncode).name
        outcome.problem = f"The verification process was killed by {name} before it finished."
        if name != "SIGKILL" and _tail(stderr):
            outcome.problem += f" Its last message: {_tail(stderr)}"
    elif process.returncode != 0:
        outcome.problem = (
            f"The verification process exited with status {process.returncode} before it "
            f"finished. Its last message: {_tail(stderr) or _tail(stdout) or '(none)'}"
        )
    elif outcome.gpu_count is None:
        outcome.problem = (
            "The verification process ended without reporting its results. "
            f"Its output ended with: {_tail(stdout) or _tail(stderr) or '(nothing)'}"
        )
    return outcome


def summarize(checks: list[dict], gpu_count: int | None) -> tuple[str, str]:
    """The run's summary value and the sentence shown above the checklist."""
    failed = [c for c in checks if c["status"] == "fail"]
    if failed:
        titles = "; ".join(c["title"] for c in failed)
        return "fail", f"{len(failed)} of {len(checks)} checks failed: {titles}."
    if not gpu_count:
        torch_check = next((c for c in checks if c["id"] == "torch"), None)
        if torch_check and torch_check["status"] != "pass":
            return "no_gpu", "No GPU is assigned to this server, and PyTorch is not installed."
        return "no_gpu", "No GPU is assigned to this server; PyTorch works on the CPU."
    return "pass", f"All checks passed on {gpu_count} GPU{'s' if gpu_count != 1 else ''}."


class Verifier:
    """Holds the latest verification and starts new ones, at most one at a time."""

    def __init__(
        self,
        python: str = sys.executable,
        timeout: float = 180.0,
        min_interval: float = 30.0,
        expected_gpus: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.python = python
        self.timeout = timeout
        self.min_interval = min_interval
        self.expected_gpus = expected_gpus
        self.state = "never_run"
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.summary: str | None = None
        self.message = "The GPU verification has not run yet."
        self.checks: list[dict] = []
        self.versions: dict[str, Any] = dict(NO_VERSIONS)
        self._process: subprocess.Popen | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False  # the server is shutting down: no worker may keep running

    @property
    def next_run_allowed_at(self) -> float | None:
        if self.finished_at is None:
            return None
        return self.finished_at + self.min_interval

    def document(self) -> dict:
        """The verify endpoint's JSON object."""
        return {
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "summary": self.summary,
            "message": self.message,
            "checks": self.checks,
            "versions": self.versions,
            "next_run_allowed_at": self.next_run_allowed_at,
        }

    def refusal(self, now: float | None = None) -> str | None:
        """Why a run cannot start now (a sentence for the user), or None if it can."""
        if self.state == "running":
            return "A verification is already running; its results appear here when it finishes."
        allowed = self.next_run_allowed_at
        now = time.time() if now is None else now
        if allowed is not None and now < allowed:
            wait = max(1, round(allowed - now))
            return (
                f"The GPU verification ran less than {self.min_interval:g} seconds ago. "
                f"It can run again in {wait} second{'s' if wait != 1 else ''}."
            )
        return None

    def start(self) -> asyncio.Task:
        """Start a run in the background (call on the event loop); the state is running at once."""
        self.state = "running"
        self.started_at = time.time()
        self.finished_at = None
        self.summary = None
        self.message = "The GPU verification is running."
        self.checks = []
        self.versions = dict(NO_VERSIONS)
        self._task = asyncio.ensure_future(self._run())
        return self._task

    def _remember_process(self, process: subprocess.Popen) -> None:
        self._process = process
        if self._stopping:  # shutdown began while the worker was being started
            _kill_group(process)

    def _run_blocking(self) -> WorkerOutcome:
        # expected_gpus may wait for the first GPU sample: this runs in a worker thread.
        expected = self.expected_gpus()
        return run_worker(self.python, self.timeout, expected, 2, self._remember_process)

    async def _run(self) -> None:
        try:
            outcome = await asyncio.to_thread(self._run_blocking)
        except Exception as e:  # never leave the state at "running"
            log.exception("GPU verification failed to run")
            outcome = WorkerOutcome(problem=f"The verification could not run: {e}")
        self._process = None
        self.checks = outcome.all_checks()
        self.versions = outcome.versions
        self.summary, self.message = summarize(self.checks, outcome.gpu_count)
        self.finished_at = time.time()
        self.state = "done"
        log.info("GPU verification finished: %s. %s", self.summary, self.message)

    def stop(self) -> None:
        """Stop a running worker, or one about to start (the server is shutting down):
        a server stop never waits for a verification to finish."""
        self._stopping = True
        process = self._process
        if process is not None and process.poll() is None:
            _kill_group(process)
