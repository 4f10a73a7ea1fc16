"""GPU assignments written on containers as labels, and read back.

The labels are the durable copy of the allocator's table: after a hub restart the hub
rebuilds the table from the running containers' labels, and the admin CLI reads the same
labels. Pure functions both ways; a label that cannot be read is reported with a reason,
never raised.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from .allocator import Gpu

PREFIX = "org.cudaspawner."
# Docker states in which a container keeps the GPUs its labels name (a paused or restarting
# container still holds them; an exited one gives them back).
ACTIVE_STATES = ("running", "paused", "restarting")
USER_LABEL = PREFIX + "user"
SERVER_LABEL = PREFIX + "server"  # the allocator's server key: "alice" or "alice/name"
GPUS_LABEL = PREFIX + "gpus"  # comma list of GPU ids, as given to Docker
# How many GPUs a server asked for where the engine picks them (a Swarm service).
GPU_COUNT_LABEL = PREFIX + "gpu-count"
SINCE_LABEL = PREFIX + "gpus-since"  # ISO 8601, UTC
PROFILE_LABEL = PREFIX + "profile"
IMAGE_LABEL = PREFIX + "image"  # the image as the profile names it
IMAGE_DIGEST_LABEL = PREFIX + "image-digest"  # repo@sha256:... where known, else the image id
PLAN_LABEL = PREFIX + "plan"  # fingerprint of the start plan the container was created from

_GPU_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z/_:.-]*$")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledHolding:
    """What one container's labels say it holds."""

    user: str
    server: str
    gpu_ids: tuple[str, ...]
    since: datetime | None = None
    profile: str = ""


def format_since(when: datetime | str) -> str:
    """ISO 8601 in UTC with a Z, e.g. 2025-01-31T09:15:00Z (seconds precision)."""
    moment = parse_since(when) if isinstance(when, str) else when
    if moment is None:
        raise ValueError(f"{when!r} is not an ISO 8601 time.")
    if moment.tzinfo is None:
        raise ValueError("A GPU assignment time must carry its time zone (use UTC).")
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_since(text: str) -> datetime | None:
    """The time in a since label (UTC assumed when no zone is given), or None."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def container_labels(
    *,
    user: str,
    server: str,
    gpus: Iterable[Gpu | str],
    gpu_count: int = 0,
    since: datetime | str = "",
    profile: str = "",
    image: str = "",
    image_digest: str = "",
) -> dict[str, str]:
    """Labels for a new container; the GPU labels only when it holds GPUs.

    `gpus` are the ids the hub gave it; where the engine picks them (Swarm), `gpus` is
    empty and `gpu_count` says how many it asked for.
    """
    if not user or not server:
        raise ValueError("Container labels need a user and a server key.")
    labels = {USER_LABEL: user, SERVER_LABEL: server}
    if profile:
        labels[PROFILE_LABEL] = profile
    if image:
        labels[IMAGE_LABEL] = image
    if image_digest:
        labels[IMAGE_DIGEST_LABEL] = image_digest
    ids = [g.id if isinstance(g, Gpu) else str(g) for g in gpus]
    if ids:
        bad = [i for i in ids if not _GPU_ID.match(i)]
        if bad:
            raise ValueError(f"Not GPU ids: {bad}.")
        labels[GPUS_LABEL] = ",".join(ids)
    elif gpu_count:
        labels[GPU_COUNT_LABEL] = str(gpu_count)
    if (ids or gpu_count) and since:
        labels[SINCE_LABEL] = format_since(since)
    return labels


def read_holding(labels: Mapping[str, str]) -> tuple[LabelledHolding | None, str | None]:
    """(holding, reason): the holding, or None with a reason when the labels are bad.

    No GPU label at all is (None, None): a CPU-only or foreign container. A bad time or
    profile only loses that detail (the GPUs are still in use, so the holding is kept)
    and comes back as the reason beside the holding.
    """
    if GPUS_LABEL not in labels:
        return None, None
    raw_ids = labels[GPUS_LABEL] or ""
    ids = tuple(part.strip() for part in raw_ids.split(","))
    if not raw_ids.strip() or not all(_GPU_ID.match(i) for i in ids):
        return None, f"label {GPUS_LABEL}={raw_ids!r} is not a comma list of GPU ids"
    if len(set(ids)) != len(ids):
        return None, f"label {GPUS_LABEL}={raw_ids!r} lists a GPU twice"
    user = (labels.get(USER_LABEL) or "").strip()
    server = (labels.get(SERVER_LABEL) or "").strip()
    if not user or not server:
        missing = USER_LABEL if not user else SERVER_LABEL
        return None, f"label {missing} is missing or empty"
    if server != user and not server.startswith(user + "/"):
        return None, f"server {server!r} does not belong to user {user!r}"

    reason = None
    since = None
    raw_since = labels.get(SINCE_LABEL)
    if raw_since is not None:
        since = parse_since(raw_since)
        if since is None:
            reason = f"label {SINCE_LABEL}={raw_since!r} is not an ISO 8601 time"
    holding = LabelledHolding(
        user=user,
        server=server,
        gpu_ids=ids,
        since=since,
        profile=(labels.get(PROFILE_LABEL) or "").strip(),
    )
    return holding, reason


def holding_from_labels(
    labels: Mapping[str, str], log: logging.Logger | None = None, where: str = ""
) -> LabelledHolding | None:
    """The holding the labels describe, or None; any problem is logged as a warning."""
    holding, reason = read_holding(labels)
    if reason:
        what = f"container {where}" if where else "a container"
        action = "ignored" if holding is None else "kept"
        (log or _log).warning("GPU labels of %s: %s (%s).", what, reason, action)
    return holding
