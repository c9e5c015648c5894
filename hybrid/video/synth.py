"""A synthetic action dataset of real MPEG-4 videos whose classes differ by motion.

Classes come in pairs that share one appearance (object shape and colour) and differ
only in motion: up/down, zoom in/out, rotating/holding still, fast/slow sideways,
diagonal up/down, sideways/vertical. Left/right sense is random per GOP where it
applies, so every class survives the horizontal-flip augmentation. At every GOP start
(an I-frame) the object's position, angle and scale are drawn afresh from the same
distribution for both classes of a pair, so an I-frame alone cannot tell the pair
apart (chance is 50 % within a pair); the accumulated motion over the GOP's 11 P-frames
can. Each video also has a textured
static background, a distractor square moving at random, camera jitter (whole-frame
1 px shifts) and Gaussian noise. Everything is deterministic given the seed.

Difficulty (``SynthConfig``; ``hybrid synth`` options): ``speed`` scales every class's
motion (below 1: subtler, so the pairs' motions differ by less than the jitter and the
distractors' random motion), ``distractors`` adds more randomly moving squares, ``noise``
and ``jitter`` raise the nuisance, and fewer ``frames`` (one GOP: 12) give shorter clips.

Temporal order (``motions="order"``, :data:`ORDER_MOTIONS`): three pairs whose motion
differs only in order or timing inside each GOP (up-and-back against down-and-back,
moving-then-resting against resting-then-moving, speeding up against slowing down),
ending each GOP at the same place, so a GOP's last accumulated P-frame cannot tell a
pair apart while the P-frame sequence can (the benchmark where temporal modelling must
pay: ``benchmarks/temporal_order.py``).

Layout written (UCF-101 style, so ``hybrid.data.splits.load_split`` reads it):
``OUT/<class>/<class>_NNN.avi``, ``OUT/classInd.txt``, ``OUT/trainlist01.txt``,
``OUT/testlist01.txt``, and ``OUT/synth.json`` (the settings and every file written). The
folder appears complete or not at all; rerunning into it replaces it whole.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybrid.video.transcode import GOP, EncodeConfig, encode_mpeg4


@dataclass(frozen=True)
class Motion:
    name: str  # class name (folder name)
    vx: float = 0.0  # translation, px per frame (x right)
    vy: float = 0.0  # translation, px per frame (y down)
    spin: float = 0.0  # rotation, degrees per frame (positive: clockwise on screen)
    zoom: float = 1.0  # scale factor per frame
    mirror: bool = False  # random left/right sense per GOP (vx and spin change sign)
    # the translation's progress at each frame of a GOP, in frames' worth of (vx, vy)
    # (GOP values, the I-frame's 0 first); None: uniform motion, frame k at k
    profile: tuple[float, ...] | None = None

    def progress(self, k: int) -> float:
        """How far the translation has gone at frame ``k`` of a GOP, in frames of motion."""
        return float(k) if self.profile is None else self.profile[k]


# Consecutive pairs share an appearance. Every class is invariant under a horizontal
# flip (the training augmentation): no class differs from another only by left/right.
MOTIONS = [
    Motion("move_up", vy=-2), Motion("move_down", vy=2),
    Motion("zoom_in", zoom=1.05), Motion("zoom_out", zoom=1 / 1.05),
    Motion("rotate", spin=9, mirror=True), Motion("hold"),
    Motion("fast_sideways", vx=4, mirror=True), Motion("slow_sideways", vx=1, mirror=True),
    Motion("diag_up", vx=2, vy=-2, mirror=True), Motion("diag_down", vx=2, vy=2, mirror=True),
    Motion("sideways", vx=2, mirror=True), Motion("vertical", vy=2, mirror=True),
]

# The temporal-order set (``SynthConfig.motions="order"``): the classes of a pair differ
# only in the order or timing of their motion inside each GOP and end every GOP where
# the other does, so the GOP's last accumulated P-frame (displacement and residual from
# the I-frame to the last frame: ``--temporal none``'s input) is the same for both; only
# the P-frame sequence tells them apart. Out-and-back is vertical (up first or down
# first), so a horizontal flip maps no class onto another.
_OUT_BACK = tuple(float(min(k, GOP - 1 - k)) for k in range(GOP))  # 0..5, 5..0
_MOVE_REST = tuple(2.0 * min(k, 6) for k in range(GOP))  # 6 frames of motion, then still
_REST_MOVE = tuple(2.0 * max(0, k - 5) for k in range(GOP))  # still, then 6 of motion
_SPEED_UP = tuple(16.0 * (k / (GOP - 1)) ** 2 for k in range(GOP))
_SLOW_DOWN = tuple(16.0 * (1 - (1 - k / (GOP - 1)) ** 2) for k in range(GOP))
#: The motions of the temporal-order set (``--motions order``), class pairs in turn.
ORDER_MOTIONS = [
    Motion("up_and_back", vy=-2, profile=_OUT_BACK),
    Motion("down_and_back", vy=2, profile=_OUT_BACK),
    Motion("move_then_rest", vx=1, mirror=True, profile=_MOVE_REST),
    Motion("rest_then_move", vx=1, mirror=True, profile=_REST_MOVE),
    Motion("speed_up", vy=1, profile=_SPEED_UP),
    Motion("slow_down", vy=1, profile=_SLOW_DOWN),
]
MOTION_SETS = {"motion": MOTIONS, "order": ORDER_MOTIONS}  # SynthConfig.motions
MAX_CLASSES = len(MOTIONS)
FORMAT = "hybrid-synth"  # synth.json's format: what make_dataset wrote, so a rerun may replace it
MANIFEST = "synth.json"
_HUES = [(230, 80, 60), (60, 120, 230), (60, 200, 90), (230, 200, 50), (200, 80, 220),
         (70, 210, 210)]  # one object colour per pair


@dataclass(frozen=True)
class SynthConfig:
    size: tuple[int, int] = (128, 96)  # (width, height) of the videos
    frames: int = 36  # frames per video (3 GOPs of 12)
    radius: int = 0  # object half-size in px at scale 1; 0: 18 % of the smaller side
    jitter: float = 0.2  # probability of a 1 px camera shake per frame
    noise: float = 2.0  # std of per-pixel Gaussian noise (intensity units)
    distractors: int = 1  # small squares moving at random over the scene (0: none)
    speed: float = 1.0  # factor on every class's motion (translation, spin, log zoom)
    test_every: int = 4  # every n-th video of a class goes to the test list
    motions: str = "motion"  # class set, a key of MOTION_SETS ("order": temporal order)

    def __post_init__(self) -> None:
        w, h = self.size
        if not (w >= 32 and h >= 32):
            raise ValueError(f"size must be at least 32x32, got {w}x{h}")
        if self.radius == 0:
            object.__setattr__(self, "radius", max(4, round(0.18 * min(w, h))))
        if 4 * self.radius > min(w, h):
            raise ValueError(f"size {w}x{h} too small for an object of radius {self.radius}")
        if self.frames < GOP:
            raise ValueError(f"frames must be >= one GOP ({GOP}), got {self.frames}")
        if self.distractors < 0:
            raise ValueError(f"distractors must be >= 0, got {self.distractors}")
        if self.speed <= 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")
        if not (self.noise >= 0 and 0 <= self.jitter <= 1):
            raise ValueError(f"noise must be >= 0 and jitter in [0, 1], got {self.noise}, "
                             f"{self.jitter}")
        if self.motions not in MOTION_SETS:
            raise ValueError(f"motions must be one of {sorted(MOTION_SETS)}, got {self.motions!r}")

    @property
    def classes(self) -> list[Motion]:
        """The class set's motions (pairs share an appearance)."""
        return MOTION_SETS[self.motions]


def _inside(shape: int, ox: np.ndarray, oy: np.ndarray, r: float) -> np.ndarray:
    ax, ay = np.abs(ox), np.abs(oy)
    if shape == 0:  # square
        return (ax < r) & (ay < r)
    if shape == 1:  # disc
        return ox**2 + oy**2 < r**2
    if shape == 2:  # diamond
        return ax + ay < r * 1.2
    if shape == 3:  # ring
        d = ox**2 + oy**2
        return (d < r**2) & (d > (0.35 * r) ** 2)
    if shape == 4:  # cross
        return ((ax < r) & (ay < r * 0.45)) | ((ay < r) & (ax < r * 0.45))
    return (ay < r) & (ax < (oy + r) * 0.6)  # triangle


def render_video(label: int, seed: int, cfg: SynthConfig = SynthConfig()) -> list[np.ndarray]:
    """The RGB frames ((H, W, 3) uint8) of one video of class ``label``."""
    n = len(cfg.classes)
    if not (0 <= label < n):
        raise ValueError(f"label {label} outside 0..{n - 1}")
    rng = np.random.default_rng([seed, label])
    m, group = cfg.classes[label], label // 2
    w, h = cfg.size
    r = cfg.radius
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cells = rng.uniform(0.3, 1.3, (h // 8 + 1, w // 8 + 1, 1)) * rng.uniform(70, 130, 3)
    bg = np.kron(cells, np.ones((8, 8, 1)))[:h, :w]  # (H, W, 3) blocky static texture
    tex = np.kron(rng.uniform(0.35, 1.15, (8, 8, 1)), np.ones((4, 4, 1)))  # (32, 32, 1)
    tex = tex * np.asarray(_HUES[group % len(_HUES)])  # (32, 32, 3)
    # distractors: (texture (12, 12, 3), start (x, y), velocity (vx, vy)); the first is
    # always drawn from the video's stream (so 0 or 1 leave the rest of it unchanged),
    # further ones from a stream of their own
    dis = [(np.kron(rng.uniform(40, 220, (3, 3, 3)), np.ones((4, 4, 1))),
            rng.uniform(0, [w, h]), rng.uniform(-2, 2, 2))]
    extra = np.random.default_rng([seed, label, 1])
    dis += [(np.kron(extra.uniform(40, 220, (3, 3, 3)), np.ones((4, 4, 1))),
             extra.uniform(0, [w, h]), extra.uniform(-2, 2, 2))
            for _ in range(cfg.distractors - 1)]
    dis = dis[:cfg.distractors]
    sp = cfg.speed
    frames, shift = [], np.zeros(2, int)
    for t in range(cfg.frames):
        k = t % GOP
        if k == 0:  # new GOP: the object's state is drawn afresh, independent of class,
            # near the centre so that it stays in view (and in crops) during the GOP
            cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
            ang = rng.uniform(0, 2 * math.pi)
            s0 = rng.uniform(0.8, 1.2)
            sense = -1.0 if m.mirror and rng.random() < 0.5 else 1.0
        d = m.progress(k)
        px, py = cx + sense * sp * m.vx * d, cy + sp * m.vy * d
        a = ang + sense * math.radians(sp * m.spin) * k
        s = s0 * m.zoom ** (sp * k)
        dx = (xx - px + w / 2) % w - w / 2  # wrap around the frame
        dy = (yy - py + h / 2) % h - h / 2
        ox = (math.cos(a) * dx + math.sin(a) * dy) / s  # object coordinates
        oy = (-math.sin(a) * dx + math.cos(a) * dy) / s
        img = bg.copy()
        inside = _inside(group % 6, ox, oy, r)
        ti = np.clip((oy[inside] * (16 / r) + 16).astype(int), 0, 31)
        tj = np.clip((ox[inside] * (16 / r) + 16).astype(int), 0, 31)
        img[inside] = tex[ti, tj]
        for dtex, dpos, dvel in dis:
            d = dpos + dvel * t
            ddx = ((xx - d[0] + w / 2) % w - w / 2 + 6).astype(int)
            ddy = ((yy - d[1] + h / 2) % h - h / 2 + 6).astype(int)
            din = (ddx >= 0) & (ddx < 12) & (ddy >= 0) & (ddy < 12)
            img[din] = dtex[ddy[din], ddx[din]]
        if rng.random() < cfg.jitter:
            shift = np.clip(shift + rng.integers(-1, 2, 2), -2, 2)
        img = np.roll(img, tuple(shift), axis=(1, 0))
        img = img + rng.normal(0, cfg.noise, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


class SynthError(ValueError):
    """An output folder ``make_dataset`` will not write into (the message says why)."""


def earlier_dataset(out: str | Path) -> dict | None:
    """The manifest (``synth.json``) of the synth dataset already in ``out``; None when
    ``out`` is missing or empty. Raises SynthError when ``out`` holds anything else: a
    file, a folder not made by ``make_dataset``, or files beside a synth dataset that it
    did not write (they would be lost when it is replaced)."""
    import json

    out = Path(out)
    if not out.exists():
        return None
    if not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder")
    if not any(out.iterdir()):
        return None
    try:
        man = json.loads((out / MANIFEST).read_text())
        assert man.get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        raise SynthError(f"{out}: not empty and not a `hybrid synth` dataset (no valid "
                         f"{MANIFEST}): choose a new or empty folder") from None
    ours = set(man["files"]) | {MANIFEST} | {f.split("/")[0] for f in man["files"]}
    other = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                   if str(p.relative_to(out)) not in ours)
    if other:
        raise SynthError(f"{out}: holds files that `hybrid synth` did not write ("
                         f"{', '.join(other[:3])}{', ...' if len(other) > 3 else ''}); "
                         "remove them or choose another folder")
    return man


def is_test(i: int, per_class: int, test_every: int) -> bool:
    """Whether video ``i`` of a class goes to the held-out split: every
    ``test_every``-th, and the last one when a class has fewer (so each class has at
    least one held-out video)."""
    return i % test_every == test_every - 1 or (per_class < test_every and i == per_class - 1)


def make_dataset(out: str | Path, classes: int = 8, per_class: int = 12, seed: int = 0,
                 cfg: SynthConfig = SynthConfig(),
                 progress: Callable[[int], None] | None = None) -> dict:
    """Write ``classes * per_class`` MPEG-4 videos (GOP 12, no B-frames), UCF-style split
    files and ``synth.json`` (what was written) under ``out``. Every class has at least
    one held-out video (``per_class`` >= 2). The folder is written beside ``out`` and
    renamed into place when complete (:func:`deploy.atomic.staged_dir`), so an
    interrupted run leaves no half dataset, and an earlier synth dataset in ``out`` is
    replaced whole (none of its videos stay behind); a non-empty ``out`` of anything
    else is refused (SynthError, :func:`earlier_dataset`). Returns a summary dict
    (``replaced``: the number of videos of the dataset replaced, 0 if none)."""
    import json

    from deploy.atomic import staged_dir

    if not 2 <= classes <= len(cfg.classes):
        raise SynthError(f"classes must be in 2..{len(cfg.classes)} for the "
                         f"{cfg.motions!r} motions, got {classes}")
    if per_class < 2:
        raise SynthError(f"per_class must be >= 2 (a training and a held-out video per "
                         f"class), got {per_class}")
    out = Path(out)
    cwd = Path.cwd()
    if out.resolve() == cwd or out.resolve() in cwd.parents:
        raise SynthError(f"{out} is the current folder (or holds it): the dataset is written "
                         "beside OUT and renamed into place; run from the folder above, e.g. "
                         "`hybrid synth NAME`")
    before = earlier_dataset(out)
    names = [m.name for m in cfg.classes[:classes]]
    train, test = [], []
    enc = EncodeConfig(size=cfg.size)
    with staged_dir(out, overwrite=True) as tmp:
        for c, name in enumerate(names):
            (tmp / name).mkdir()
            for i in range(per_class):
                rel = f"{name}/{name}_{i:03d}.avi"
                frames = render_video(c, seed * 100_003 + c * 1009 + i, cfg)
                encode_mpeg4(frames, tmp / rel, enc)
                (test if is_test(i, per_class, cfg.test_every) else train).append((rel, c))
                if progress:
                    progress(1)
        (tmp / "classInd.txt").write_text("".join(f"{c + 1} {n}\n" for c, n in enumerate(names)))
        (tmp / "trainlist01.txt").write_text("".join(f"{p} {c + 1}\n" for p, c in train))
        (tmp / "testlist01.txt").write_text("".join(f"{p}\n" for p, _ in test))
        summary = {"out": str(out), "classes": names, "videos": classes * per_class,
                   "train": len(train), "test": len(test), "size": list(cfg.size),
                   "frames": cfg.frames, "seed": seed, "speed": cfg.speed,
                   "distractors": cfg.distractors, "noise": cfg.noise, "jitter": cfg.jitter,
                   "motions": cfg.motions}
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT, "version": 1, **summary,
                                                "files": files}, indent=1))
    return {**summary, "replaced": before["videos"] if before else 0}
