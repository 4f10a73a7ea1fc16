"""A real `jupyter lab` server in a subprocess, isolated from the user's Jupyter setup.

It serves the labextension built from this checkout (nbextension/labextension), not whatever
copy an earlier `pip install` left in the environment, so the browser tests exercise the
current front end.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "nbextension" / "frontend"
LABEXTENSION = REPO / "nbextension" / "labextension"
EXTENSION_NAME = "@cudaspawner/gpu-panel"
BASE_URL = "/user/alice/"  # a non-default prefix catches URLs that ignore the base URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        newest = max([newest, *(f.stat().st_mtime for f in files if f.is_file())])
    return newest


def labextension_is_stale() -> bool:
    """Whether the built labextension is missing or older than its sources."""
    built = LABEXTENSION / "package.json"
    if not built.exists():
        return True
    sources = [FRONTEND / "src", FRONTEND / "style", FRONTEND / "package.json"]
    return _newest_mtime(sources) > built.stat().st_mtime


def build_labextension() -> None:
    """Build the labextension with jlpm (what the wheel build does), when it is stale."""
    if not labextension_is_stale():
        return
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    jlpm = str(bin_dir / "jlpm")
    steps = []
    if not (FRONTEND / "node_modules").exists():
        steps.append([jlpm, "install"])
    steps.append([jlpm, "build:prod"])
    for step in steps:
        result = subprocess.run(
            step, cwd=FRONTEND, env=env, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"Building the GPU panel failed ({' '.join(step)}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )


@dataclass
class JupyterServer:
    """One `jupyter lab` process; `url` ends with the base URL."""

    workdir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    server_config: dict = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_URL}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def page(self, path: str) -> str:
        """A browser URL under the base URL, logged in with the token."""
        return f"{self.url}{path}?token={self.token}"

    def api(self, path: str, method: str = "GET") -> requests.Response:
        return requests.request(
            method,
            f"{self.url}api/gpu/v1/{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=10,
        )

    def _prepare_dirs(self) -> dict[str, str]:
        config = self.workdir / "config"
        data = self.workdir / "data"
        # Serve this checkout's build ahead of any installed copy (the first one found wins).
        link = self.workdir / "path" / "labextensions" / EXTENSION_NAME
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(LABEXTENSION, target_is_directory=True)
        # No "would you like news?" toast over the panel in screenshots.
        (config / "labconfig").mkdir(parents=True, exist_ok=True)
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps(
                {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
            )
        )
        # The user-level file outranks the environment's, e.g. to switch our extension off.
        (config / "jupyter_server_config.json").write_text(json.dumps(self.server_config))
        (self.workdir / "root").mkdir(exist_ok=True)
        data.mkdir(exist_ok=True)
        return {
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(data),
            "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
            "JUPYTER_PATH": str(self.workdir / "path"),
        }

    def start(self, timeout: float = 90) -> JupyterServer:
        env = {**os.environ, **self._prepare_dirs(), **self.env_overrides}
        args = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            f"--ServerApp.base_url={BASE_URL}",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.workdir / 'root'}",
            "--ServerApp.port_retries=0",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--allow-root",
            *self.extra_args,
        ]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{self.log_tail()}")
            try:
                response = requests.get(
                    f"{self.url}api/status",
                    headers={"Authorization": f"token {self.token}"},
                    timeout=2,
                )
                if response.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL: a server may linger on SIGTERM."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=8)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
