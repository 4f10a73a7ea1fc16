"""The SSH service process: the keys page and the gateway, on one event loop.

Started by the hub as a managed service (`configure_ssh`); settings arrive as
`--SshGatewayApp.<trait>=...` on its command line, the hub's token and URLs in the
environment JupyterHub gives every service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from pathlib import Path
from urllib.parse import urlsplit

import docker
from tornado.httpserver import HTTPServer
from traitlets import Bool, Float, Int, Unicode
from traitlets.config import Application

from ..host.log_redaction import install as install_log_redaction
from ..services.hub_api import HubApi, service_ssl_context
from .gateway import Gateway, GatewaySettings
from .keys import KeyStore, ensure_host_key, fingerprint
from .web import PageInfo, make_app


class LazyDockerClient:
    """A Docker client that connects at first use: the engine may be down (or restarting)
    when the hub starts this service, which must come up anyway for the keys page."""

    def __init__(self) -> None:
        self._client: docker.DockerClient | None = None

    def __getattr__(self, name: str):
        if self._client is None:
            self._client = docker.from_env()
        return getattr(self._client, name)


class SshGatewayApp(Application):
    name = "cudaspawner-ssh"
    description = "SSH gateway into users' running servers, and their keys page."

    data_dir = Unicode(
        "/var/lib/cudaspawner",
        help="The hub's data directory: the host key (ssh_host_ed25519_key, 0600), the key "
        "store (ssh-keys.sqlite, 0600) and the session log (ssh-sessions.log) live here.",
    ).tag(config=True)
    ssh_ip = Unicode("", help="Address the SSH port listens on ('' = all).").tag(config=True)
    ssh_port = Int(2222, help="The gateway's one SSH port, for every user.").tag(config=True)
    ssh_host = Unicode(
        "",
        help="Host name users type after '@' (shown on the keys page); default: the hub's.",
    ).tag(config=True)
    page_ip = Unicode("127.0.0.1", help="Address of the keys page (behind the hub's proxy).").tag(
        config=True
    )
    page_port = Int(0, help="Port of the keys page; the hub's service URL names it.").tag(
        config=True
    )
    hub_url = Unicode("/", help="The hub's public URL, for links and sentences users read.").tag(
        config=True
    )
    auto_start = Bool(
        False,
        help="When a user with no running server connects, start their default profile and "
        "wait, printing progress lines, instead of telling them how to start one.",
    ).tag(config=True)
    start_timeout = Float(120, help="Seconds to wait for an auto-started server.").tag(config=True)
    activity_interval = Float(
        300, help="Seconds between activity reports to the hub while a user is connected."
    ).tag(config=True)
    sftp_server = Unicode(
        "/usr/lib/openssh/sftp-server",
        help="Path of OpenSSH's sftp-server inside user images (sftp, and scp, which speaks "
        "SFTP since OpenSSH 9).",
    ).tag(config=True)

    max_sessions_per_user = Int(
        10, help="Sessions (shells, commands, sftp) one user may have open at once."
    ).tag(config=True)
    max_unauthenticated_per_source = Int(
        10, help="Connections from one address that may wait to log in at once."
    ).tag(config=True)
    login_grace = Float(15, help="Seconds a connection has to log in before it is closed.").tag(
        config=True
    )

    def start(self) -> None:
        install_log_redaction()
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(name)s] %(message)s")
        asyncio.run(self.serve())

    async def serve(self) -> None:
        data = Path(self.data_dir)
        host_key = ensure_host_key(data / "ssh_host_ed25519_key")
        store = KeyStore(data / "ssh-keys.sqlite")
        hub = HubApi(
            os.environ["JUPYTERHUB_API_URL"],
            os.environ["JUPYTERHUB_API_TOKEN"],
            ssl_context=service_ssl_context(),
        )
        settings = GatewaySettings(
            hub_url=self.hub_url.rstrip("/") + "/",
            auto_start=self.auto_start,
            start_timeout=self.start_timeout,
            activity_interval=self.activity_interval,
            sftp_server=self.sftp_server,
            session_log=data / "ssh-sessions.log",
            max_sessions_per_user=self.max_sessions_per_user,
            max_unauthenticated_per_source=self.max_unauthenticated_per_source,
            login_grace=self.login_grace,
        )
        gateway = Gateway(store, hub, LazyDockerClient(), settings)
        public = host_key.convert_to_public()
        info = PageInfo(
            ssh_host=self.ssh_host or urlsplit(self.hub_url).hostname or os.uname().nodename,
            ssh_port=self.ssh_port,
            host_key_fingerprint=fingerprint(public),
            host_key_line=public.export_public_key("openssh").decode().strip(),
            hub_url=settings.hub_url,
        )
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/ssh/")
        app = make_app(store, info, prefix, secrets.token_bytes(32), gateway.account_of)
        HTTPServer(app, xheaders=True).listen(self.page_port, self.page_ip)
        self.log.info("SSH keys page on %s:%s%s", self.page_ip, self.page_port, prefix)
        try:
            await gateway.listen(self.ssh_ip, self.ssh_port, host_key)
            self.log.info(
                "SSH gateway on port %s, host key %s", self.ssh_port, info.host_key_fingerprint
            )
        except OSError as e:
            # Stay up for the keys page: exiting would make the hub restart us in a loop.
            self.log.error(
                "SSH gateway cannot listen on port %s (%s); set CUDASPAWNER_SSH_PORT to a free "
                "port and restart the hub.",
                self.ssh_port,
                e.strerror or e,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


main = SshGatewayApp.launch_instance
