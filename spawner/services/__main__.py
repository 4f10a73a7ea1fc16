"""`python -m spawner.services`: the operations service, as the hub starts it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
from pathlib import Path

from ..accounting.budgets import parse_budgets
from ..accounting.usage_store import UsageStore
from ..gpu.inventory import load_inventory
from ..gpu.labels import ACTIVE_STATES, GPUS_LABEL
from ..host.log_redaction import install as install_log_redaction
from .admin_page import make_app
from .fleet_service import FleetService, settings_from_document
from .hub_api import service_ssl_context
from .hub_client import HubClient
from .json_logs import use_json_logs
from .lifetime import end_with_parent
from .operations import JSON_LOGS_ENV, SETTINGS_ENV
from .usage_keeper import UsageKeeper
from .usage_page import usage_routes


def _containers():
    import docker

    client = docker.from_env(timeout=15)

    async def listed() -> list[dict]:
        return await asyncio.to_thread(
            client.api.containers, filters={"label": GPUS_LABEL, "status": list(ACTIVE_STATES)}
        )

    return listed


async def main(document: dict) -> None:
    log = logging.getLogger("cudaspawner.operations")
    settings = settings_from_document(document)
    inventory = document.get("inventory")
    try:
        gpus = load_inventory(inventory, log) if inventory is not None else None
    except ValueError as e:
        log.error("GPU inventory unusable, the page shows held GPUs only: %s", e)
        gpus = None
    hub_ssl = service_ssl_context()
    client = HubClient(
        os.environ["JUPYTERHUB_API_URL"],
        os.environ["JUPYTERHUB_API_TOKEN"],
        document["proxy_url"],
        proxy_ca=document.get("proxy_ca"),
        hub_ssl=hub_ssl,
        public_domain=document.get("public_domain") or "",
    )
    line = Path(document["gpu_line"]) if document.get("gpu_line") else None
    store = UsageStore(document["usage_url"]) if document.get("usage_url") else None
    models = {g.id: g.name for g in gpus or ()}
    budgets = parse_budgets(document.get("usage_budgets") or [])
    usage = (
        UsageKeeper(
            store, settings.interval, models, log, budgets, bool(document.get("usage_stop"))
        )
        if store is not None
        else None
    )
    fleet = FleetService(
        client,
        _containers(),
        settings,
        gpus,
        Path(document["snapshot"]),
        log=log,
        line=line,
        usage=usage,
    )
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/gpu-admin/")
    shares = {str(k): int(v) for k, v in (document.get("gpu_line_shares") or {}).items()}
    app = make_app(
        fleet,
        prefix,
        secrets.token_bytes(32),
        line_shares=shares,
        extra_routes=usage_routes(prefix),
        usage_store=store,
    )
    from urllib.parse import urlparse

    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    app.listen(url.port, url.hostname)
    log.info(
        "GPU operations service at %s: reclaim %s, looking every %.0f s",
        prefix,
        "on" if settings.enabled else "off",
        settings.interval,
    )
    await fleet.run_forever()


if __name__ == "__main__":
    end_with_parent()  # the hub started us: a hub killed outright takes us with it
    install_log_redaction()
    if os.environ.get(JSON_LOGS_ENV):
        use_json_logs()
        logging.getLogger().setLevel(logging.INFO)
    else:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="[%(levelname).1s %(asctime)s %(name)s] %(message)s",
        )
    try:
        asyncio.run(main(json.loads(Path(os.environ[SETTINGS_ENV]).read_text())))
    except KeyboardInterrupt:  # the hub stops its services with SIGINT/SIGTERM
        pass
