"""Runs the front end's vitest suite (tests/browser/run_frontend_unit.sh) as part of pytest."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("run_frontend_unit.sh")


def test_gpu_panel_view_logic_unit_tests_pass():
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, (
        f"The GPU panel's unit tests failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    )
