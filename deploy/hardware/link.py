"""The bridge over a link: the membrane potentials of every segment, from the neurocores
to the accelerator (time and energy per video).

``bytes`` is what the bridge carries a video (``deploy.artifact.bridge.BridgeSpec.bytes_per_video``
summed over the STM branches: segments x C' x h x w voltages of 24 bits); a link preset
(:mod:`deploy.hardware.targets`) gives ``time = transfers x latency + bytes / bandwidth`` and
``energy = 8 x bytes x energy per bit``. Figures are estimates (the presets mark their
secondary figures).
"""
from __future__ import annotations

from deploy.hardware.targets import LinkPreset


def bridge_transfer(nbytes: int, link: LinkPreset, transfers: int = 1) -> dict:
    """Time and energy of moving ``nbytes`` in ``transfers`` DMA transfers over ``link``."""
    if not (nbytes >= 0 and transfers >= 1):
        raise ValueError(f"bridge transfer: bytes must be >= 0 and transfers >= 1, got "
                         f"{nbytes}, {transfers}")
    return {"link": link.name, "title": link.title, "source": link.source,
            "label": "estimated (link preset)", "bytes": int(nbytes), "transfers": transfers,
            "time_s": transfers * link.latency_s + nbytes / link.bandwidth,
            "energy_j": 8 * nbytes * link.energy_per_bit_j}
