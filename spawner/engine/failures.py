"""Turn Docker engine failures into sentences a notebook user can act on.

Pure: takes exceptions or their text, returns a ``tornado.web.HTTPError`` that JupyterHub
shows as the spawn error (``jupyterhub_message`` is what the hub puts on the page and in the
API's ``message``), never a bare "Internal Server Error".
"""

from __future__ import annotations

from tornado import web

NO_GPU_RUNTIME = (
    "This host cannot give containers GPUs: install the NVIDIA Container Toolkit "
    "(and restart the Docker engine), or pick the CPU profile."
)
# What the hub log tells the admin, per GPU-path failure of the engine.
ADMIN_NO_GPU_DRIVER = (
    "The Docker engine has no device driver for GPU requests: install the NVIDIA Container "
    "Toolkit (nvidia-container-toolkit) and restart dockerd, or set "
    "CUDADockerSpawner.gpu_request_style to match the host."
)
ADMIN_NO_NVIDIA_RUNTIME = (
    "The Docker engine has no runtime named nvidia (gpu_request_style = 'runtime'): install "
    "the NVIDIA Container Toolkit and run `nvidia-ctk runtime configure --runtime=docker`, "
    "then reload dockerd; or use gpu_request_style = 'device_requests'."
)
ADMIN_NO_CDI = (
    "The Docker engine does not know the CDI device (gpu_request_style = 'cdi'): generate "
    "the spec with `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml` (Docker 25+ with "
    "CDI enabled), or use gpu_request_style = 'device_requests'."
)
ENGINE_DOWN = (
    "The Docker engine on the hub host is not reachable, so no server can start right now. "
    "Try again in a minute; if it keeps happening, tell your administrator."
)


def user_error(status: int, message: str) -> web.HTTPError:
    """An HTTPError whose message reaches the user as written."""
    # tornado formats log_message with %-args only when args are given; passing none
    # keeps any '%' in the message intact.
    err = web.HTTPError(status, message)
    err.jupyterhub_message = message
    return err


def missing_image(image: str) -> web.HTTPError:
    return user_error(
        503,
        f"The image '{image}' is not available on this host. Ask your administrator to build "
        "or pull it (images/build.sh builds the default images), or pick another profile.",
    )


def is_missing_image(exc: BaseException) -> bool:
    """True for the engine's "no such image" (docker-py's ImageNotFound, or a 404)."""
    import docker.errors

    if not isinstance(exc, docker.errors.APIError):
        return False
    return exc.status_code == 404 or "not found" in str(exc).lower()


def is_engine_unreachable(exc: BaseException) -> bool:
    """True for the errors docker-py raises when it cannot talk to the engine at all."""
    # Imported here so this module stays importable (and testable) without docker-py.
    import docker.errors
    import requests.exceptions

    if isinstance(exc, requests.exceptions.ConnectionError):
        return True
    if isinstance(exc, docker.errors.DockerException) and not isinstance(
        exc, docker.errors.APIError
    ):
        return "connection" in str(exc).lower() or "error while fetching" in str(exc).lower()
    return isinstance(exc, (ConnectionError, FileNotFoundError))


def gpu_path_fault(text: str) -> str | None:
    """What the admin must install, when an engine error is a missing GPU piece; else None."""
    lowered = text.lower()
    if "could not select device driver" in lowered and "gpu" in lowered:
        return ADMIN_NO_GPU_DRIVER
    if "nvidia" in lowered and (
        "unknown or invalid runtime name" in lowered or "unknown runtime specified" in lowered
    ):
        return ADMIN_NO_NVIDIA_RUNTIME
    if "cdi" in lowered and (
        "unresolvable" in lowered or "not registered" in lowered or "unknown" in lowered
    ):
        return ADMIN_NO_CDI
    return None


def explain_start_failure(text: str) -> str | None:
    """A user-facing sentence for a container that could not be created or started."""
    return NO_GPU_RUNTIME if gpu_path_fault(text) else None


def start_failure(exc: BaseException) -> web.HTTPError | None:
    """The sentence a failed start shows its user, or None for an error we cannot explain."""
    if isinstance(exc, web.HTTPError):
        return exc
    if is_engine_unreachable(exc):
        return user_error(503, ENGINE_DOWN)
    explained = explain_start_failure(str(exc))
    # 400: the user's GPU choice cannot be served here; the CPU profile still can.
    return user_error(400, explained) if explained else None
