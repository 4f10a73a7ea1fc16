"""Which GPU processes belong to this container.

The driver reports host PIDs. Inside a container with its own PID namespace most of them do not
exist, and the ones that do may be unrelated processes that happen to have the same number. A PID
counts as ours when ``/proc/<pid>`` exists and (where its open files can be read) the process
holds an NVIDIA device file open; everything else is counted as "outside this container".
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .backend import RawProcess


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class ProcessResolver:
    """Split driver-reported processes into this container's and foreign ones.

    ``check_device_files`` guards against PID coincidences on a real driver; the simulated
    backend turns it off because its processes hold no device files.
    """

    def __init__(self, proc_root: str | Path = "/proc", check_device_files: bool = True) -> None:
        self.proc_root = Path(proc_root)
        self.check_device_files = check_device_files
        # (pid, start time) -> command, or None when the PID is not one of ours
        self._verdicts: dict[tuple[int, bytes], str | None] = {}

    def _start_time(self, pid: int) -> bytes | None:
        stat = _read(self.proc_root / str(pid) / "stat")
        if stat is None:
            return None
        # Field 22 (start time) follows the command in parentheses, which may contain spaces.
        fields = stat[stat.rfind(b")") + 2 :].split()
        return fields[19] if len(fields) > 19 else b""

    def _holds_nvidia_device(self, pid: int) -> bool:
        fd_dir = self.proc_root / str(pid) / "fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            return True  # cannot look (another user's process): trust that the PID exists
        for name in names:
            try:
                if os.readlink(fd_dir / name).startswith("/dev/nvidia"):
                    return True
            except OSError:
                continue
        return False

    def _command(self, pid: int) -> str:
        cmdline = _read(self.proc_root / str(pid) / "cmdline") or b""
        command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
        if not command:
            comm = _read(self.proc_root / str(pid) / "comm") or b"?"
            command = f"[{comm.decode(errors='replace').strip()}]"
        return command

    def command_if_ours(self, pid: int) -> str | None:
        """The command line of ``pid`` if it is one of this container's GPU processes."""
        start = self._start_time(pid)
        if start is None:
            return None
        key = (pid, start)
        if key not in self._verdicts:
            ours = not self.check_device_files or self._holds_nvidia_device(pid)
            self._verdicts[key] = self._command(pid) if ours else None
        return self._verdicts[key]

    def split(self, processes: Iterable[RawProcess]) -> tuple[list[dict], dict]:
        """Return (our processes as status dicts, ``{"count", "memory_used"}`` of the rest)."""
        ours: list[dict] = []
        foreign_count = 0
        foreign_memory = 0
        for process in processes:
            command = self.command_if_ours(process.pid)
            if command is None:
                foreign_count += 1
                foreign_memory += process.memory_used or 0
                continue
            ours.append(
                {"pid": process.pid, "command": command, "memory_used": process.memory_used}
            )
        if len(self._verdicts) > 1024:  # forget PIDs of long-gone processes
            self._verdicts.clear()
        return ours, {"count": foreign_count, "memory_used": foreign_memory}
