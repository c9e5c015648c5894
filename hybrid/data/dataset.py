"""A torch Dataset of compressed-video samples: per video, ``segments`` GOPs sampled TSN
style, each an I-frame and its 11 accumulated P-frame MV fields and residuals, cropped
identically across modalities and handed over as the uint8 codes the model sees
(normalising, resizing and flipping run on the device: :func:`deploy.artifact.inputs.decode`).

A short GOP (the end of a video) is padded to 11 P-frames by repeating its last
P-frame (for accumulated modalities: the motion froze); a GOP without P-frames gets
the code of zero (128) for MV and residual.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hybrid.data.arrayfile import CacheReader
from hybrid.data.cache import PrepareConfig, extract_one
from hybrid.data.codes_kernel import crop_codes
from hybrid.data.shards import ShardedCacheReader
from hybrid.data.sources import detect_layout, load_split
from hybrid.data.splits import SplitError
from hybrid.data.transforms import CropConfig, Normalization, crop_box, sample_segments
from hybrid.data.videocache import VideoCacheReader, source_stamp
from hybrid.video.errors import VideoError
from hybrid.video.reader import P_PER_GOP
from hybrid.video.seek import gop_index, read_gops_at
from hybrid.video.transcode import DEFAULT_SIZE, is_coviar_form

DEFAULT_CROP = CropConfig()
COVIAR_NORM = Normalization()


# What reading one sample raises for a video that cannot be used (the message names it):
# training and evaluation report such a video and go on without it.
UNREADABLE = (VideoError, RuntimeError, OSError, ValueError)


IDENTITY = np.arange(256, dtype=np.uint8)  # the code table of codes


MAX_UPSCALE = 2  # largest crop side / the frames' long side


class CompressedVideoDataset(Dataset):
    """``source``: a dataset folder (UCF-101, HMDB-51, Kinetics, Something-Something v2
    or folder-per-class; videos are read and, when not MPEG-4 GOP 12, transcoded on the
    fly at ``video_size``), a video cache (``hybrid prepare``'s default store), an array
    cache ``.h5`` (``hybrid prepare --store arrays``), or a folder of shard caches
    (``--store arrays --shard K/N``); a store holds the size it was prepared at.
    ``video_size`` (W, H): a folder's videos are resized to it exactly as ``hybrid
    prepare`` does (default: prepare's 340x256), so both paths give the same tensors.
    ``items``: (relative path, label) as from :func:`hybrid.data.splits.load_split`.

    ``__getitem__`` returns what the model sees as uint8 codes (see
    :mod:`deploy.artifact.inputs`), cropped but not resized: ``iframe`` (S, 3, M, M), ``mv`` (S, 11,
    2, M, M), ``residual`` (S, 11, 3, M, M) with the crop in the top-left corner of each
    M x M buffer, ``box`` int64 (crop height, crop width, flip, C), and ``label`` int64,
    with S = ``segments``, C = ``crop.size``, M = the largest crop side the crop config
    can draw. :func:`deploy.artifact.inputs.decode` (on the device) makes the normalised float32
    (S, 3, C, C), (S, 11, 2, C, C), (S, 11, 3, C, C) from a batch of them."""

    def __init__(self, source: str | Path, items: list[tuple[str, int]], segments: int = 3,
                 train: bool = True, crop: CropConfig | int = DEFAULT_CROP,
                 norm: Normalization = COVIAR_NORM, accumulate: bool = True,
                 coviar: bool = True, video_size: tuple[int, int] = DEFAULT_SIZE,
                 seed: int | None = None, layout: str | None = None) -> None:
        if segments < 1:
            raise ValueError(f"segments must be >= 1, got {segments}")
        self.source, self.items = Path(source), list(items)
        self.segments, self.train = segments, train
        self.crop = CropConfig(size=crop) if isinstance(crop, int) else crop
        self.norm, self.video_size = norm, tuple(video_size)
        self._tables = norm.tables()  # (MV, residual) codes of int16 values
        self._scratch: dict[str, np.ndarray] | None = None  # the last clip's raw arrays
        self.accumulate, self.coviar = accumulate, coviar
        self.rng = random.Random(seed)
        self.cache = self.videos = None
        self._gops: dict[tuple[str, str], list[int] | None] = {}  # original videos' indices
        layout = layout or detect_layout(self.source)
        if layout == "videocache":
            self.videos = VideoCacheReader(self.source)
        if layout in ("cache", "shards"):
            self.cache = (CacheReader(self.source) if layout == "cache"
                          else ShardedCacheReader(self.source))
            a = self.cache.attrs
            if (bool(a["accumulate"]), bool(a["coviar"])) != (accumulate, coviar):
                raise ValueError(f"{source}: cache holds accumulate={bool(a['accumulate'])}, "
                                 f"coviar={bool(a['coviar'])}; asked for "
                                 f"accumulate={accumulate}, coviar={coviar}")
            if float(a["mv_bound"]) != norm.mv_bound:
                raise ValueError(f"{source}: cache holds MV codes for mv_bound "
                                 f"{float(a['mv_bound'])}, asked for {norm.mv_bound}")
        w, h = self.read_size
        if self.crop.size > MAX_UPSCALE * max(w, h):
            # a crop is cut from the frame and resized: past this it only upscales, and
            # memory grows with its square (--size 100000 asked torch for 480 GB)
            raise ValueError(f"crop size {self.crop.size}: at most {MAX_UPSCALE * max(w, h)} "
                             f"({MAX_UPSCALE} x the long side of the {w}x{h} frames it is "
                             "cut from)")

    @property
    def read_size(self) -> tuple[int, int]:
        """(W, H) the frames are read at: a cache's or video cache's prepare size, else
        ``video_size`` (a folder's videos are resized to it)."""
        reader = self.cache if self.cache is not None else self.videos
        size = reader.attrs["size"] if reader is not None else self.video_size
        return int(size[0]), int(size[1])

    @classmethod
    def one_video(cls, path: str | Path, segments: int, **kw) -> CompressedVideoDataset:
        """One video file for evaluation, read as a video whatever else its folder holds
        (the folder's own layout, e.g. caches beside the video, is not consulted)."""
        path = Path(path)
        return cls(path.parent, [(path.name, 0)], segments, **{"train": False, **kw},
                   layout="folder")

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_scratch": None}  # a worker gets no clip's arrays

    def __len__(self) -> int:
        return len(self.items)

    def _codes(self, arrays: dict) -> dict:
        return self.norm.codes(arrays)

    def _seekable(self, path: Path) -> list[int] | None:
        """The GOP index of an original video already in the reader's form at
        ``video_size`` (probed once per process and version of the file), else None."""
        key = (str(path), source_stamp(path))
        if key not in self._gops:
            self._gops[key] = (gop_index(path) if is_coviar_form(path, self.video_size)
                               else None)
        return self._gops[key]

    def load(self, rel: str, n_segments: int) -> tuple[dict[str, np.ndarray], list[int]]:
        """The sampled GOPs (S leading) as uint8 codes
        (:meth:`~hybrid.data.transforms.Normalization.codes`), and their indices."""
        arrays, idx = self.load_raw(rel, n_segments)
        if arrays["mv"].dtype != np.uint8:
            arrays = self._codes(arrays)
        return arrays, idx

    def load_raw(self, rel: str, n_segments: int, reuse: dict[str, np.ndarray] | None = None
                 ) -> tuple[dict[str, np.ndarray], list[int]]:
        """The sampled GOPs (S leading) and their indices: uint8 codes from an array
        cache or a whole-video transcode, the reader's raw arrays (int16 MV and residual
        in CoViAR mode) from a video, coded later on the crop only. Videos (a video
        cache's, or originals already MPEG-4 GOP 12 at ``video_size``) decode only the
        sampled GOPs; other originals are transcoded and extracted whole at every read
        (``hybrid prepare DATA -o DIR``, the video cache, does it once). ``reuse``: arrays
        of an earlier call that a video's GOPs may be decoded into (overwritten)."""
        if self.cache is not None:
            n = self.cache.num_gops(rel)
            idx = sample_segments(n, n_segments, self.train, self.rng)
            return self.cache.gops(rel, idx), idx
        if self.videos is not None:
            path, starts = self.videos.entry(rel)
        else:
            path = self.source / rel
            starts = self._seekable(path)
        if starts is not None:
            idx = sample_segments(len(starts), n_segments, self.train, self.rng)
            return read_gops_at(path, starts, idx, self.accumulate, self.coviar, reuse), idx
        _, arrays, err = extract_one((str(self.source), rel,
                                PrepareConfig(self.video_size, self.accumulate, self.coviar,
                                              mv_bound=self.norm.mv_bound)))
        if err is not None:
            raise RuntimeError(err)
        idx = sample_segments(len(arrays["p_frames"]), n_segments, self.train, self.rng)
        return {k: v[idx] for k, v in arrays.items()}, idx

    def _lookup_source(self, x: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(array, table) for :func:`~hybrid.data.codes_kernel.crop_codes`: int16 values
        viewed as uint16 with their code ``table``; uint8 codes with the identity;
        float (sub-pixel) MVs coded first."""
        if x.dtype == np.int16:
            return x.view(np.uint16), table
        if x.dtype != np.uint8:
            x = self.norm.mv_codes(x)
        return x, IDENTITY

    def buffer_side(self, h: int, w: int) -> int:
        """M: the largest crop side :func:`~hybrid.data.transforms.crop_box` can draw for an
        (h, w) frame."""
        short = min(h, w)
        fracs = (*self.crop.scales, self.crop.eval_fraction) if self.train else (
            self.crop.eval_fraction,)
        return max(1, max(int(short * f) for f in fracs))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rel, label = self.items[i]
        a, _ = self.load_raw(rel, self.segments, self._scratch)
        s = self.segments
        h, w = a["iframe"].shape[1:3]
        top, left, ch, cw, flip = crop_box(h, w, self.crop, self.train, self.rng)
        rows, cols = slice(top, top + ch), slice(left, left + cw)
        m = self.buffer_side(h, w)
        if not (ch <= m and cw <= m):
            raise ValueError(f"crop {ch}x{cw} larger than the {m}x{m} buffer")
        iframe = np.zeros((s, 3, m, m), np.uint8)
        mv = np.zeros((s, P_PER_GOP, 2, m, m), np.uint8)
        res = np.zeros((s, P_PER_GOP, 3, m, m), np.uint8)
        iframe[..., :ch, :cw] = a["iframe"][:, rows, cols].transpose(0, 3, 1, 2)
        # crop first: coding, padding and transposing touch the crop only, in one pass
        p = np.ascontiguousarray(a["p_frames"], np.int64)
        for name, buf, table in (("mv", mv, self._tables[0]),
                                 ("residual", res, self._tables[1])):
            x, table = self._lookup_source(a[name], table)
            crop_codes(x, p, table, top, left, ch, cw, 128, buf)
        self._scratch = a  # nothing returned refers to it: the next clip decodes into it
        return {
            "iframe": torch.from_numpy(iframe),  # (S, 3, M, M) uint8
            "mv": torch.from_numpy(mv),  # (S, 11, 2, M, M) uint8 codes
            "residual": torch.from_numpy(res),  # (S, 11, 3, M, M) uint8 codes
            "box": torch.tensor([ch, cw, int(flip), self.crop.size], dtype=torch.int64),
            "label": torch.tensor(label, dtype=torch.int64),
        }


def open_split(source: str | Path, split: str, segments: int, train: bool,
               crop: CropConfig | int, fold: int = 1, seed: int | None = None,
               video_size: tuple[int, int] = DEFAULT_SIZE,
               ) -> tuple[CompressedVideoDataset, list[str]]:
    """(dataset, class names) of ``split`` ('train' or 'test') and ``fold`` of a dataset
    folder (videos resized to ``video_size``, W x H) or a ``hybrid prepare`` cache;
    :class:`.SplitError` for an empty split."""
    items, classes = load_split(source, split, fold)
    if not items:
        raise SplitError(f"{source}: the {split} split of fold {fold} is empty")
    return CompressedVideoDataset(source, items, segments, train=train, crop=crop,
                                  video_size=video_size, seed=seed), classes
