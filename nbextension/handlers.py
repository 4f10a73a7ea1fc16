"""REST endpoints under the server's base URL, behind jupyter_server's authentication.

Every handler declares ``auth_resource = "gpu"``: an Authorizer can allow or deny the "read"
(GET) and "write" (POST) actions on it. Handlers only read state that the sampler thread and the
verifier keep; nothing here calls the driver or starts CUDA on the event loop.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

if TYPE_CHECKING:
    from .extension import GpuExtension

AUTH_RESOURCE = "gpu"
SETTINGS_KEY = "cudaspawner_gpu"
API_PREFIX = "api/gpu/v1"
_FORBIDDEN = "You are not allowed to {} this server's GPU {}. Ask the server's owner for access."


class GpuApiHandler(APIHandler):
    """Common base: the resource name and access to the extension's state."""

    auth_resource = AUTH_RESOURCE

    @property
    def gpu(self) -> GpuExtension:
        return self.settings[SETTINGS_KEY]

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")  # always the latest sample

    def json_body(self) -> object:
        """The request's JSON, or None when it is not JSON (the parser then says why)."""
        try:
            return json.loads(self.request.body or b"null")
        except ValueError:
            return None


class GpuStatusHandler(GpuApiHandler):
    """GET api/gpu/v1/status[?history=0]: the latest sample, with history unless asked not to."""

    @web.authenticated
    @authorized(message=_FORBIDDEN.format("read", "status"))
    def get(self) -> None:
        snapshot = self.gpu.sampler.snapshot
        with_history = self.get_query_argument("history", "1").lower() not in ("0", "false", "no")
        body = snapshot.json_with_history if with_history else snapshot.json_without_history
        # The idle-GPU notice and the owner's GPU-hours ride along, so the panel learns of
        # them at its next poll.
        reclaim = self.gpu.reclaim.json().encode()
        usage = self.gpu.usage.json().encode()
        self.set_header("Content-Type", "application/json")
        self.finish(body[:-1] + b',"reclaim":' + reclaim + b',"usage":' + usage + b"}")


class GpuVerifyHandler(GpuApiHandler):
    """GET: the latest verification. POST: start a new one (202), or 429 when too soon."""

    @web.authenticated
    @authorized(message=_FORBIDDEN.format("read", "verification"))
    def get(self) -> None:
        self.finish(self.gpu.verifier.document())

    @web.authenticated
    @authorized(message=_FORBIDDEN.format("run", "verification"))
    def post(self) -> None:
        verifier = self.gpu.verifier
        refusal = verifier.refusal()
        if refusal is not None:
            self.set_status(429)
            allowed = verifier.next_run_allowed_at
            if allowed is not None and verifier.state != "running":
                self.set_header("Retry-After", str(max(1, int(allowed - time.time()) + 1)))
            self.finish({"message": refusal, "next_run_allowed_at": allowed})
            return
        verifier.start()
        self.set_status(202)
        self.finish(verifier.document())


class GpuReclaimHandler(GpuApiHandler):
    """The idle-GPU notice. GET: the notice. POST {"stop_at", "idle_seconds", "message"}: the
    hub's reclaim service warns. DELETE: it saw activity again, no warning."""

    @web.authenticated
    @authorized(message=_FORBIDDEN.format("read", "idle notice"))
    def get(self) -> None:
        self.finish(self.gpu.reclaim.document())

    @web.authenticated
    @authorized(message=_FORBIDDEN.format("set", "idle notice"))
    def post(self) -> None:
        from .reclaim import NoticeError

        try:
            self.finish(self.gpu.reclaim.warn(self.json_body()))
        except NoticeError as e:
            self.set_status(400)
            self.finish({"message": str(e)})

    @web.authenticated
    @authorized(message=_FORBIDDEN.format("clear", "idle notice"))
    def delete(self) -> None:
        self.finish(self.gpu.reclaim.clear())


class GpuKeepHandler(GpuApiHandler):
    """POST: the owner keeps the GPUs ("keep"); the reclaim service counts it as activity."""

    @web.authenticated
    @authorized(message=_FORBIDDEN.format("keep", "GPUs"))
    def post(self) -> None:
        self.finish(self.gpu.reclaim.keep())


class GpuUsageHandler(GpuApiHandler):
    """The owner's GPU-hours. GET: as last sent. POST {"week_hours", "month_hours",
    "warnings"}: the hub's operations service sends them."""

    @web.authenticated
    @authorized(message=_FORBIDDEN.format("read", "usage"))
    def get(self) -> None:
        self.finish(json.dumps(self.gpu.usage.document()))

    @web.authenticated
    @authorized(message=_FORBIDDEN.format("set", "usage"))
    def post(self) -> None:
        from .usage import UsageError

        try:
            self.finish(json.dumps(self.gpu.usage.set(self.json_body())))
        except UsageError as e:
            self.set_status(400)
            self.finish({"message": str(e)})


def gpu_handlers(base_url: str) -> list[tuple[str, type[GpuApiHandler]]]:
    """URL patterns of the GPU API under ``base_url``."""
    return [
        (url_path_join(base_url, API_PREFIX, "status"), GpuStatusHandler),
        (url_path_join(base_url, API_PREFIX, "verify"), GpuVerifyHandler),
        (url_path_join(base_url, API_PREFIX, "reclaim"), GpuReclaimHandler),
        (url_path_join(base_url, API_PREFIX, "reclaim", "keep"), GpuKeepHandler),
        (url_path_join(base_url, API_PREFIX, "usage"), GpuUsageHandler),
    ]
