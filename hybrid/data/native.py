"""The size a dataset folder's videos are read at when none is given: their own.

Why: reading a folder at a fixed 340x256 (CoViAR's preprocessing, ``hybrid prepare``'s
default) upscales small videos several times over (a 128x96 synthetic set 2.7x per side,
so a 56 px crop saw a sixth of what it sees at the videos' own size) and transcodes
every one of them on the way (issue 28: held-out top-1 0.833 at 340x256 against 0.958
at 128x96 on the same set). A folder whose videos share one size is read at that size
(no resize; MPEG-4 GOP-12 videos are then read without transcoding); a folder of mixed
sizes at the most common one. Only the header of each probed video is read.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PROBED = 16  # videos whose header is read (spread evenly over the split's list)


@dataclass(frozen=True)
class NativeSize:
    size: tuple[int, int] | None  # (W, H) the videos are read at; None: nothing readable
    probed: int  # videos whose size was read
    sizes: dict[str, int]  # "WxH" -> how many of the probed videos have it

    def describe(self) -> str:
        """One line for the user: the size chosen and why."""
        if self.size is None:
            return "no video could be probed for its size"
        w, h = self.size
        if len(self.sizes) == 1:
            return f"{w}x{h}, the videos' own size ({self.probed} probed)"
        others = ", ".join(f"{s} x{n}" for s, n in self.sizes.items())
        return (f"{w}x{h}, the most common of the probed videos' sizes ({others}); the "
                "others are resized to it")


def native_size(root: str | Path, items: list[tuple[str, int]],
                probed: int = PROBED) -> NativeSize:
    """The size of a dataset folder's videos ``items`` ((path relative to ``root``,
    label)): the most common (W, H) among ``probed`` of them spread evenly over the
    list (ties: the larger area). Videos that cannot be opened are left out (training
    skips and reports them); with none readable ``size`` is None."""
    from hybrid.video.errors import VideoError
    from hybrid.video.probe import probe

    if not items:
        return NativeSize(None, 0, {})
    step = max(1, len(items) // probed)
    counts: Counter[tuple[int, int]] = Counter()
    for rel, _ in items[::step][:probed]:
        try:
            info = probe(Path(root) / rel, with_types=False)
        except (VideoError, OSError, ValueError, RuntimeError):  # training reports it
            continue
        if info.width > 0 and info.height > 0:
            counts[(info.width, info.height)] += 1
    if not counts:
        return NativeSize(None, 0, {})
    best = max(counts, key=lambda s: (counts[s], s[0] * s[1]))
    return NativeSize(best, sum(counts.values()),
                      {f"{w}x{h}": n for (w, h), n in counts.most_common()})
