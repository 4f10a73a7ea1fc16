"""cudaspawner notebook side: GPU status, verification and metrics in the Jupyter server.

Importing this package is cheap on purpose (server start-up time matters, and the device check
imports it where jupyter_server is absent): jupyter_server, prometheus_client, pynvml and torch
are imported only when the extension loads or a backend opens.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbextension"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .attach import load

    load(serverapp)
