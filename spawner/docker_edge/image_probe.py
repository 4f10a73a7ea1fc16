"""What a site's own image needs, when it does not say (issue 27): its python is run once,
without a GPU, to ask its torch for the CUDA runtime and the architectures it was built
for; the answer is kept by image id for the life of the hub process.

The probe is a container of this hub (labelled so), with no network, no capabilities, no
new privileges, a memory cap and a time limit; it is removed whatever happens. An image
whose python or torch does not answer is "not known" (not checked), never refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import ClassVar

from ..engine.hub_identity import HUB_LABEL
from ..gpu.cuda_compat import ImageNeeds, min_driver

PROBE_LABEL = "org.cudaspawner.image-probe"
PROBE_SECONDS = 60
# Run by the image's own python: its torch's CUDA build and kernels, read without a GPU.
PROBE = (
    "import json\n"
    "try:\n"
    "    import torch\n"
    "    flags = getattr(torch._C, '_cuda_getArchFlags', lambda: '')() or ''\n"
    "    print(json.dumps({'cuda': torch.version.cuda, 'archs': flags.split()}))\n"
    "except Exception:\n"
    "    print(json.dumps({'cuda': None, 'archs': []}))\n"
)


def needs_from_answer(text: str) -> ImageNeeds | None:
    """The probe's last line as ImageNeeds; None when it is not an answer."""
    try:
        answer = json.loads(text.strip().splitlines()[-1])
        cuda = answer.get("cuda")
        archs = tuple(str(a) for a in answer.get("archs") or ())
    except (ValueError, IndexError, AttributeError):
        return None
    if not cuda:
        return ImageNeeds(None, None, ())
    try:
        return ImageNeeds(str(cuda), min_driver(str(cuda)), archs)
    except ValueError:  # a CUDA the table does not know: not checked rather than guessed
        return None


class ImageProbe:
    """Run the probe in an image, once per image id (per hub process)."""

    known: ClassVar[dict[str, ImageNeeds | None]] = {}

    def __init__(self, docker: Callable[..., Awaitable], hub_id: str, log) -> None:
        self.docker, self.hub_id, self.log = docker, hub_id, log

    async def needs(self, image: str, image_id: str) -> ImageNeeds | None:
        if image_id not in self.known:
            self.known[image_id] = await self._run(image)
            self.log.info("Inspected %s once for CUDA: %s", image, self.known[image_id])
        return self.known[image_id]

    async def _run(self, image: str) -> ImageNeeds | None:
        host_config = {
            "NetworkMode": "none",
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "Memory": 2 * 2**30,
        }
        try:
            made = await self.docker(
                "create_container",
                image,
                command=["python3", "-c", PROBE],
                entrypoint=[],
                labels={PROBE_LABEL: "1", HUB_LABEL: self.hub_id},
                host_config=host_config,
            )
        except Exception as e:
            self.log.warning("Could not inspect %s for CUDA: %s", image, e)
            return None
        try:
            await self.docker("start", made["Id"])
            await asyncio.wait_for(self.docker("wait", made["Id"]), PROBE_SECONDS)
            logs = await self.docker("logs", made["Id"], stdout=True, stderr=False)
            return needs_from_answer(logs.decode(errors="replace"))
        except Exception as e:
            self.log.warning("Could not inspect %s for CUDA: %s", image, e)
            return None
        finally:
            try:
                await self.docker("remove_container", made["Id"], force=True)
            except Exception as e:
                self.log.warning("Could not remove the probe of %s: %s", image, e)
