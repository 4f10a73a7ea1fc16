"""Debian's OpenSSH client against the gateway, and a user image that has sftp-server."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import docker
import pytest

IMAGE = "cudaspawner/cpu:latest"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def user_image_with_sftp_server(client: docker.DockerClient) -> str:
    """The project's CPU user image, which must carry OpenSSH's sftp-server."""
    try:
        client.containers.run(IMAGE, ["test", "-x", SFTP_SERVER], remove=True)
    except docker.errors.ContainerError:
        pytest.fail(
            f"{IMAGE} has no {SFTP_SERVER} (an image from before issue 17): rebuild it with "
            "images/build.sh cpu"
        )
    return IMAGE


@dataclass
class Key:
    private: Path
    public_line: str


def make_key(directory: Path, name: str) -> Key:
    """A fresh ed25519 key pair, as `ssh-keygen` writes it (private file 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{name}@test")
    path.write_bytes(key.export_private_key("openssh"))
    path.chmod(0o600)
    line = key.export_public_key("openssh").decode().strip()
    (directory / f"{name}.pub").write_text(line + "\n")
    return Key(path, line)


@dataclass
class SshTarget:
    """Where the gateway listens and the known_hosts line that pins its host key."""

    port: int
    known_hosts: Path

    def options(
        self, key: Key | None, port_flag: str = "-p", log_level: str = "ERROR"
    ) -> list[str]:
        """Client options; scp and sftp name the port with -P."""
        opts = [
            port_flag,
            str(self.port),
            "-F",
            "/dev/null",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=20",
            "-o",
            f"LogLevel={log_level}",
        ]
        if key is not None:
            opts += ["-i", str(key.private), "-o", "IdentitiesOnly=yes"]
        return opts

    def ssh(
        self, user: str, key: Key | None, *command: str, extra: tuple = (), timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ssh", *self.options(key), *extra, f"{user}@127.0.0.1", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


def write_known_hosts(data_dir: Path, port: int, path: Path) -> None:
    key = asyncssh.read_private_key(str(data_dir / "ssh_host_ed25519_key"))
    line = key.convert_to_public().export_public_key("openssh").decode().strip()
    path.write_text(f"[127.0.0.1]:{port} {line}\n")


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the SSH gateway is not listening on port {port}")


def has_openssh_client() -> bool:
    return all(os.access(p, os.X_OK) for p in ("/usr/bin/ssh", "/usr/bin/scp", "/usr/bin/sftp"))
