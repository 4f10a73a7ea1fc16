"""Processes in a user's container through the Docker API's exec, on the event loop.

Creating, resizing and inspecting an exec are short calls made with docker-py in a
thread. Starting one hijacks the HTTP connection into a raw stream (the API's
`Upgrade: tcp`); that stream is read and written here with asyncio, so a session never
holds a thread. Without a TTY Docker multiplexes stdout and stderr in 8-byte framed
chunks (`demux_frames`); with a TTY the stream is the terminal's bytes as they are.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import docker

STDOUT, STDERR = 1, 2


def docker_socket_path() -> str:
    """The engine's unix socket (DOCKER_HOST when it names one, else the default)."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return urlparse(host).path
    if host:
        raise RuntimeError(f"The SSH gateway talks to Docker over a unix socket, not {host!r}.")
    return "/var/run/docker.sock"


@dataclass
class FrameDecoder:
    """Splits Docker's multiplexed stream into (stream, bytes) chunks, across reads."""

    buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        out = []
        while len(self.buffer) >= 8:
            kind, size = self.buffer[0], struct.unpack(">I", self.buffer[4:8])[0]
            if len(self.buffer) < 8 + size:
                break
            out.append((kind, bytes(self.buffer[8 : 8 + size])))
            del self.buffer[: 8 + size]
        return out


@dataclass
class ExecSpec:
    """One process to run in a container."""

    container_id: str
    cmd: list[str]
    user: str
    workdir: str
    tty: bool = False
    env: dict[str, str] = field(default_factory=dict)


class Exec:
    """A started exec: write stdin, read output, resize, then learn its exit code."""

    def __init__(self, client: docker.DockerClient, exec_id: str, tty: bool) -> None:
        self.client = client
        self.exec_id = exec_id
        self.tty = tty
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    async def start(cls, client: docker.DockerClient, spec: ExecSpec) -> Exec:
        created = await asyncio.to_thread(
            client.api.exec_create,
            spec.container_id,
            spec.cmd,
            stdin=True,
            stdout=True,
            stderr=True,
            tty=spec.tty,
            user=spec.user,
            workdir=spec.workdir,
            environment=spec.env or None,
        )
        self = cls(client, created["Id"], spec.tty)
        await self._hijack()
        return self

    async def _hijack(self) -> None:
        reader, writer = await asyncio.open_unix_connection(docker_socket_path())
        body = json.dumps({"Detach": False, "Tty": self.tty}).encode()
        writer.write(
            f"POST /exec/{self.exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
            "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status and b" 200 " not in status:
            writer.close()
            raise RuntimeError(f"Docker refused to start the process: {status.decode()}")
        self._reader, self._writer = reader, writer

    async def pump_output(self, on_output: Callable[[int, bytes], None]) -> None:
        """Deliver (stream, bytes) to `on_output` until the process closes its output."""
        assert self._reader is not None
        decoder = FrameDecoder()
        while True:
            data = await self._reader.read(65536)
            if not data:
                return
            if self.tty:
                on_output(STDOUT, data)
            else:
                for kind, chunk in decoder.feed(data):
                    on_output(STDERR if kind == STDERR else STDOUT, chunk)

    async def write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    def close_stdin(self) -> None:
        """End of input: the process reads EOF (Docker honours a half-closed stream).

        Not with a terminal: Docker then ends the whole session, output not yet read
        included, and OpenSSH's server likewise keeps a terminal open after the client's EOF.
        """
        if self.tty:
            return
        if self._writer is not None and self._writer.can_write_eof():
            try:
                self._writer.write_eof()
            except OSError:
                pass

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    async def resize(self, width: int, height: int) -> None:
        if self.tty and width > 0 and height > 0:
            try:
                await asyncio.to_thread(
                    self.client.api.exec_resize, self.exec_id, height=height, width=width
                )
            except docker.errors.APIError:
                pass  # the process may have just ended; a lost resize is harmless

    async def exit_code(self) -> int:
        for _ in range(50):
            info = await asyncio.to_thread(self.client.api.exec_inspect, self.exec_id)
            if not info.get("Running"):
                code = info.get("ExitCode")
                return 255 if code is None else int(code)
            await asyncio.sleep(0.05)
        return 255

    async def terminate(self) -> None:
        """Hang up a process the client left behind (Docker does not end an exec itself).

        The gateway runs on the engine's host, so the exec's host pid can be signalled.
        """
        try:
            info = await asyncio.to_thread(self.client.api.exec_inspect, self.exec_id)
        except docker.errors.APIError:
            return
        pid = info.get("Pid") or 0
        if not info.get("Running") or pid <= 1:
            return
        for sig in (signal.SIGHUP, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            await asyncio.sleep(1)
            info = await asyncio.to_thread(self.client.api.exec_inspect, self.exec_id)
            if not info.get("Running"):
                return
