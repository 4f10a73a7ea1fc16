"""Telling this container's GPU processes from host PIDs it cannot see (fake /proc trees)."""

from __future__ import annotations

import os

from nbextension.backend import RawProcess
from nbextension.processes import ProcessResolver


def fake_process(proc, pid, cmdline, fds=(), start=b"777"):
    root = proc / str(pid)
    (root / "fd").mkdir(parents=True)
    (root / "cmdline").write_bytes(cmdline)
    (root / "comm").write_bytes(b"worker\n")
    fields = [b"S"] + [b"0"] * 18 + [start]  # field 22 (start time) is the 20th after ")"
    (root / "stat").write_bytes(f"{pid} (my (odd) name) ".encode() + b" ".join(fields))
    for number, target in enumerate(fds):
        os.symlink(target, root / "fd" / str(number))


def test_process_holding_an_nvidia_device_is_ours_with_its_command(tmp_path):
    fake_process(
        tmp_path, 42, b"python\x00train.py\x00--epochs\x00003\x00", ["/dev/nvidia0", "/dev/null"]
    )
    ours, foreign = ProcessResolver(tmp_path).split([RawProcess(42, 1 << 30)])
    assert ours == [{"pid": 42, "command": "python train.py --epochs 003", "memory_used": 1 << 30}]
    assert foreign == {"count": 0, "memory_used": 0}


def test_host_pids_missing_from_proc_are_counted_as_foreign(tmp_path):
    fake_process(tmp_path, 42, b"python\0", ["/dev/nvidia0"])
    processes = [RawProcess(42, 100), RawProcess(90001, 2000), RawProcess(90002, None)]
    ours, foreign = ProcessResolver(tmp_path).split(processes)
    assert [p["pid"] for p in ours] == [42]
    assert foreign == {"count": 2, "memory_used": 2000}


def test_same_pid_without_a_gpu_device_open_is_a_coincidence_not_ours(tmp_path):
    fake_process(tmp_path, 7, b"bash\0", ["/dev/pts/0"])
    ours, foreign = ProcessResolver(tmp_path).split([RawProcess(7, 512)])
    assert ours == [] and foreign == {"count": 1, "memory_used": 512}


def test_device_check_can_be_turned_off_for_simulated_processes(tmp_path):
    fake_process(tmp_path, 7, b"bash\0", [])
    ours, _ = ProcessResolver(tmp_path, check_device_files=False).split([RawProcess(7, 1)])
    assert ours[0]["command"] == "bash"


def test_process_with_empty_cmdline_shows_its_name(tmp_path):
    fake_process(tmp_path, 9, b"", ["/dev/nvidiactl"])
    ours, _ = ProcessResolver(tmp_path).split([RawProcess(9, None)])
    assert ours == [{"pid": 9, "command": "[worker]", "memory_used": None}]


def test_a_reused_pid_is_looked_at_again(tmp_path):
    resolver = ProcessResolver(tmp_path)
    fake_process(tmp_path, 5, b"old\0", ["/dev/nvidia0"], start=b"100")
    assert resolver.split([RawProcess(5, 1)])[0][0]["command"] == "old"
    (tmp_path / "5" / "cmdline").write_bytes(b"new\0")
    stat = (tmp_path / "5" / "stat").read_bytes().replace(b" 100", b" 200")
    (tmp_path / "5" / "stat").write_bytes(stat)
    assert resolver.split([RawProcess(5, 1)])[0][0]["command"] == "new"
