"""Attaching the extension to a running jupyter_server: its state, its handlers, its stop.

Apart from `extension` (the state) and `handlers` (the API), which it joins, so that neither
of those imports the other.
"""

from __future__ import annotations

import os
from typing import Any

from .config import GpuMonitor
from .extension import GpuExtension
from .handlers import SETTINGS_KEY, gpu_handlers


def load(serverapp: Any) -> GpuExtension:
    """Attach the extension to a jupyter_server ServerApp (see nbextension/__init__.py)."""
    config = GpuMonitor(parent=serverapp)
    extension = GpuExtension(config, os.environ)
    web_app = serverapp.web_app
    web_app.settings[SETTINGS_KEY] = extension
    web_app.add_handlers(".*$", gpu_handlers(web_app.settings["base_url"]))
    extension.start()
    if config.verify_at_start:
        # Runs once the event loop turns; the worker is a child process, readiness is unaffected.
        serverapp.io_loop.add_callback(extension.verifier.start)

    # jupyter_server calls stop hooks only for ExtensionApp classes; a module extension has
    # none, so stop our thread and worker as part of the server's own extension clean-up.
    cleanup_extensions = serverapp.cleanup_extensions

    async def cleanup_with_gpu() -> None:
        extension.stop()
        await cleanup_extensions()

    serverapp.cleanup_extensions = cleanup_with_gpu
    serverapp.log.info(
        "GPU extension: backend %s, sampling every %.1f s, API at %sapi/gpu/v1/",
        config.backend,
        extension.sampler.interval,
        web_app.settings["base_url"],
    )
    return extension
