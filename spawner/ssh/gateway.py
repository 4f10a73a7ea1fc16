"""The SSH gateway: public-key logins, each session run in the user's own container.

asyncssh speaks the protocol. This module decides who may log in (a key on the user's
list, nothing else), which container a session runs in (`target.choose_container`),
and runs shells, commands, the `sftp` subsystem and forwarded connections there with
`docker exec` as the container's own user, in its home. Forwarding reaches only
loopback ports inside that container, through a small relay run in it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import docker

from ..services.hub_api import HubApi, HubApiError
from .connection import Login, SSHConnection
from .docker_exec import STDERR, Exec, ExecSpec
from .keys import KeyStore
from .target import NoServer, Target, choose_container

log = logging.getLogger("cudaspawner.ssh")

# Run in the user's container for each forwarded connection (`python3 -c RELAY port`).
RELAY = Path(__file__).with_name("relay.py").read_text()


@dataclass
class GatewaySettings:
    """What the gateway needs to know besides its collaborators (set by the service app)."""

    hub_url: str = "/"  # the hub's public URL, for the sentences users read
    auto_start: bool = False
    start_timeout: float = 120
    activity_interval: float = 300
    sftp_server: str = "/usr/lib/openssh/sftp-server"
    relay_python: str = "python3"
    session_log: Path | None = None
    # Limits: one user cannot hold the gateway, nor one address its login slots.
    max_sessions_per_user: int = 10
    max_unauthenticated_per_source: int = 10
    login_grace: float = 15.0  # seconds to authenticate before the connection is closed


class Gateway:
    """Runs sessions for logged-in users in their running containers."""

    def __init__(
        self,
        store: KeyStore,
        hub: HubApi,
        docker_client: docker.DockerClient,
        settings: GatewaySettings,
    ) -> None:
        self.store = store
        self.hub = hub
        self.docker = docker_client
        self.settings = settings
        self.logins: dict[asyncssh.SSHServerConnection, Login] = {}
        self.sessions_of: Counter[str] = Counter()  # running sessions per user
        self.unauthenticated: Counter[str] = Counter()  # per source address

    async def listen(self, host: str, port: int, host_key: asyncssh.SSHKey) -> asyncssh.SSHAcceptor:
        return await asyncssh.create_server(
            lambda: SSHConnection(self),
            host or None,
            port,
            server_host_keys=[host_key],
            encoding=None,
            line_editor=False,  # the container's shell does its own line editing
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            login_timeout=self.settings.login_grace,
        )

    # --- bookkeeping -----------------------------------------------------------------
    def record(self, event: str, login: Login, **fields) -> None:
        """One line per login, logout and session: user, key, source, start, end."""
        entry = {
            "event": event,
            "user": login.user,
            "key": login.key.fingerprint if login.key else "",
            "key_name": login.key.name if login.key else "",
            "source": login.peer,
            **{k: _iso(v) if k in ("started", "ended") else v for k, v in fields.items()},
        }
        log.info("ssh %s", json.dumps(entry))
        if self.settings.session_log:
            # 0600: who connects from where is for the admin's eyes only.
            fd = os.open(self.settings.session_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(json.dumps(entry) + "\n")

    async def keep_active(self, login: Login) -> None:
        """While connected, tell the hub the user is active (the idle culler reads it)."""
        while True:
            try:
                await self.hub.record_activity(login.user)
            except Exception as e:  # the hub restarting must not end the session
                log.warning("ssh: could not record activity for %s: %s", login.user, e)
            await asyncio.sleep(self.settings.activity_interval)

    async def account_of(self, user: str) -> str | None:
        """The account behind a user name, as its keys record it (the hub's creation time of
        that account); "" for no such user, None when the hub cannot be asked."""
        try:
            model = await self.hub.user(user)
        except (HubApiError, OSError) as e:
            log.warning("ssh: could not ask the hub about %r: %s", user, e)
            return None
        return str((model or {}).get("created") or "")

    # --- which container ---------------------------------------------------------------
    async def resolve(self, user: str, progress: Callable[[str], None]) -> Target:
        """The user's running container, starting it first if the admin allows."""
        started_here = False
        deadline = time.monotonic() + self.settings.start_timeout
        hub_url = self.settings.hub_url
        while True:
            model = await self.hub.user(user)
            if model is None:
                raise NoServer(f"There is no hub user {user!r}.")
            server = (model.get("servers") or {}).get("") or {}
            attrs = None
            object_id = (server.get("state") or {}).get("object_id")
            if object_id:
                attrs = await asyncio.to_thread(self._inspect, object_id)
            target, why = choose_container(user, model, attrs)
            if target is not None:
                return target
            if why not in ("no server", "starting"):
                log.warning("ssh: no session for %s: %s", user, why)
                raise NoServer(
                    f"Your server cannot take SSH sessions ({why}). Restart it from "
                    f"{hub_url}hub/home and try again."
                )
            if why == "no server" and not self.settings.auto_start:
                raise NoServer(
                    f"You have no running server. Start one at {hub_url}hub/spawn (or from "
                    "your hub home page), then connect again."
                )
            if why == "no server" and not started_here:
                progress("Starting your server with the default profile ...")
                try:
                    await self.hub.start_server(user)
                except HubApiError as e:
                    raise NoServer(
                        e.hub_message or f"The hub could not start your server ({e.code})."
                    ) from e
                started_here = True
            elif why == "starting" and not started_here:
                progress("Your server is starting; waiting for it ...")
                started_here = True
            if time.monotonic() > deadline:
                raise NoServer(
                    f"Your server did not become ready in {self.settings.start_timeout:.0f} s; "
                    f"see {hub_url}hub/home."
                )
            await asyncio.sleep(1)

    def _inspect(self, container_id: str) -> dict | None:
        try:
            return self.docker.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return None

    # --- sessions ----------------------------------------------------------------------
    async def session(self, process: asyncssh.SSHServerProcess) -> None:
        """A shell, a command or the sftp subsystem, run in the user's container."""
        login = self.logins.get(process.get_extra_info("connection"))
        user = process.get_extra_info("username")
        if login is None or login.user != user:
            process.exit(255)
            return
        kind = "sftp" if process.subsystem else ("exec" if process.command else "shell")
        if self.sessions_of[user] >= self.settings.max_sessions_per_user:
            self.record("session_refused", login, kind=kind, reason="session limit")
            process.stderr.write(
                f"You have {self.sessions_of[user]} sessions open, the most this hub allows; "
                "close one and try again.\n".encode()
            )
            process.exit(1)
            return
        self.sessions_of[user] += 1
        started = time.time()
        code = 255
        try:
            code = await self._run(process, user, kind)
        except (HubApiError, OSError, docker.errors.APIError, RuntimeError) as e:
            # The hub restarting, the server stopping under us: a sentence, not a dropped line.
            log.warning("ssh: session for %s failed: %s", user, e)
            process.stderr.write(
                b"The gateway could not reach your server just now (the hub may be "
                b"restarting, or the server stopping); try again in a minute.\n"
            )
            code = 1
        finally:
            self.sessions_of[user] -= 1
            self.record("session", login, kind=kind, started=started, ended=time.time(), exit=code)
        process.exit(code)

    async def _run(self, process: asyncssh.SSHServerProcess, user: str, kind: str) -> int:
        tty = process.get_terminal_type() is not None
        newline = "\r\n" if tty else "\n"

        def say(text: str) -> None:
            process.stderr.write((text + newline).encode())

        try:
            target = await self.resolve(user, say)
        except NoServer as e:
            say(str(e))
            return 1
        shell = target.env.get("SHELL") or "/bin/sh"
        env = {"HOME": target.home}
        if tty:
            env["TERM"] = process.get_terminal_type() or "xterm"
        if kind == "sftp":
            if process.subsystem != "sftp":
                say(f"This server offers no {process.subsystem!r} subsystem.")
                return 1
            if not await self._has_sftp_server(target):
                say(
                    f"This server's image has no SFTP server ({self.settings.sftp_server}, "
                    "Debian package openssh-sftp-server), so sftp and scp cannot work; "
                    "ask your admin to add it to the image."
                )
                return 1
            cmd = [self.settings.sftp_server]
        elif kind == "exec":
            cmd = [shell, "-c", process.command]
        else:
            cmd = [shell, "-l"]
        await self.hub.record_activity(user)
        spec = ExecSpec(target.container_id, cmd, target.user, target.home, tty, env)
        execution = await Exec.start(self.docker, spec)
        if tty:
            width, height = process.get_terminal_size()[:2]
            await execution.resize(width, height)

        async def deliver(stream: int, data: bytes) -> None:
            out = process.stderr if stream == STDERR and not tty else process.stdout
            out.write(data)
            await out.drain()

        return await self._bridge(execution, process.stdin, deliver, process.wait_closed())

    async def _bridge(
        self,
        execution: Exec,
        stdin: asyncssh.SSHReader,
        deliver: Callable[[int, bytes], Awaitable[None]],
        closed: Awaitable[None],
    ) -> int:
        """Copy stdin in and output out until the process ends or the client goes away."""

        async def feed() -> None:
            while True:
                try:
                    data = await stdin.read(65536)
                except asyncssh.TerminalSizeChanged as change:
                    await execution.resize(change.width, change.height)
                    continue
                except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                    continue
                if not data:
                    execution.close_stdin()
                    return
                await execution.write(data)

        queue: asyncio.Queue = asyncio.Queue()
        output = asyncio.ensure_future(execution.pump_output(lambda s, d: queue.put_nowait((s, d))))

        async def drain_output() -> None:
            await output
            queue.put_nowait(None)

        async def send() -> None:
            while (item := await queue.get()) is not None:
                await deliver(*item)

        feeder = asyncio.ensure_future(feed())
        done_output = asyncio.ensure_future(drain_output())
        sender = asyncio.ensure_future(send())
        gone = asyncio.ensure_future(closed)
        try:
            await asyncio.wait({sender, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone.done() and not sender.done():
                await execution.terminate()  # the client left: end what it started
                return 255
            return await execution.exit_code()
        except (OSError, asyncssh.Error):
            await execution.terminate()
            return 255
        finally:
            for task in (feeder, output, done_output, sender, gone):
                task.cancel()
            execution.close()

    async def _has_sftp_server(self, target: Target) -> bool:
        spec = ExecSpec(
            target.container_id, ["test", "-x", self.settings.sftp_server], target.user, "/"
        )
        check = await Exec.start(self.docker, spec)
        check.close_stdin()
        await check.pump_output(lambda s, d: None)
        check.close()
        return await check.exit_code() == 0

    # --- forwarding --------------------------------------------------------------------
    async def forward(
        self, login: Login, port: int, reader: asyncssh.SSHReader, writer: asyncssh.SSHWriter
    ) -> None:
        """One `ssh -L` connection to `port` on the user's container's loopback."""
        started = time.time()
        result = "closed"
        try:
            try:
                target = await self.resolve(login.user, lambda text: None)
            except NoServer as e:
                result = str(e)
                return
            spec = ExecSpec(
                target.container_id,
                [self.settings.relay_python, "-c", RELAY, str(port)],
                target.user,
                target.home,
            )
            execution = await Exec.start(self.docker, spec)
            problems: list[bytes] = []

            async def deliver(stream: int, data: bytes) -> None:
                if stream == STDERR:
                    problems.append(data)
                else:
                    writer.write(data)
                    await writer.drain()

            code = await self._bridge(execution, reader, deliver, writer.channel.wait_closed())
            result = b"".join(problems).decode(errors="replace").strip() or f"exit {code}"
        except (
            OSError,
            asyncssh.Error,
            HubApiError,
            docker.errors.APIError,
            RuntimeError,
        ) as e:
            result = str(e)
        finally:
            writer.close()
            self.record(
                "forward", login, port=port, started=started, ended=time.time(), result=result
            )


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
