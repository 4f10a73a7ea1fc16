"""Know before you start (issue 27): a GPU profile whose image cannot run on this host's
GPUs is unavailable on the form, with the reason, and refused (409) by the REST API, before
any GPU is reserved or anyone waits in line. A mixin of CUDADockerSpawner.

The image says what it needs in its labels (`gpu.cuda_compat`); the host's driver is
NVML's (or `gpu_driver_version`), each GPU's compute capability NVML's (or the inventory's).
An image without those labels is asked once, at its first GPU start (`image_probe`); a host
that does not say is not checked.
"""

from __future__ import annotations

from ..engine import failures
from ..gpu.cuda_compat import ImageNeeds, refusal
from ..planning.profiles import Profile
from ..services.hub_metrics import record_refusal
from .image_probe import ImageProbe


class ChecksImage:
    async def _image_refusal(self, profile: Profile, probe_now: bool = False) -> str | None:
        """Why this GPU profile's image cannot run here (a sentence), or None."""
        if profile.max_gpus <= 0:
            return None
        host = await self.gpu_host()
        capabilities = [g.compute_capability for g in host.inventory]
        driver = self.gpu_driver_version or host.driver
        if not driver and not any(capabilities):
            return None  # nothing known of the host: nothing to check
        return refusal(await self._image_needs(profile, probe_now), driver, capabilities)

    async def _image_needs(self, profile: Profile, probe_now: bool) -> ImageNeeds | None:
        """What the profile's image says it needs (None: not known, so never refused)."""
        image = profile.image or self._site_image()
        try:
            inspected = await self._inspect_image(image)
        except Exception:  # a missing image has its own sentence, at the start
            return None
        needs = ImageNeeds.from_labels((inspected.get("Config") or {}).get("Labels"))
        if needs is None:
            # A site's own image that does not say: asked once, at a start (the form only
            # shows what is known already).
            probe = ImageProbe(self.docker, self.hub_id, self.log)
            image_id = str(inspected.get("Id", image))
            if probe_now or image_id in ImageProbe.known:
                needs = await probe.needs(image, image_id)
        return needs

    async def _check_image_runs(self, profile: Profile) -> None:
        reason = await self._image_refusal(profile, probe_now=True)
        if reason:
            record_refusal("image_incompatible", user=self.user.name, server=self.server_key,
                           message=reason)  # fmt: skip
            raise failures.user_error(409, reason)

    async def _image_refusals(self, visible: list[Profile]) -> dict[str, str | None]:
        """slug -> why its image cannot run on this host's GPUs (None: it can, or not known)."""
        return {p.slug: await self._image_refusal(p) for p in visible}
