"""The fleet benchmark runs and stays under its limit (64 GPUs, 500 users, < 100 ms)."""

from __future__ import annotations

import importlib.util

from tests.hubtools import REPO


def test_admin_page_and_gpu_table_answer_in_under_100_ms_with_64_gpus_and_500_users(capsys):
    spec = importlib.util.spec_from_file_location("fleet_benchmark", REPO / "benchmarks/fleet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--repeat", "15"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "64 GPUs, 500 users" in out and "OK" in out
