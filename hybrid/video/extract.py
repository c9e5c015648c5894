"""The per-video HDF5 layout shared by ``hybrid extract`` files and the ``hybrid prepare``
cache: per GOP, ``iframe`` (G, H, W, 3) uint8 RGB, ``mv`` (G, 11, H, W, 2) float32 pixels
(x then y, content motion ``dst - src``), ``residual`` (G, 11, H, W, 3) int16 RGB units
(residuals are integers in every mode), ``p_frames`` (G,) int16: how many of the 11
P-frame slots are real; the rest of a short final GOP is zero. Unnormalised. Chunked one
GOP per chunk and gzip-compressed, so reading one GOP touches one chunk."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy.atomic import ensure_free
from hybrid.data.mpstart import HeldInterrupt
from hybrid.video.reader import P_PER_GOP, read_gops

FORMAT = "hybrid-compressed-video"
VERSION = 1


class FormatError(Exception):
    """An HDF5 file that is not ours, or of another format version."""


def extract_arrays(path: str | Path, accumulate: bool = True, coviar: bool = True) -> dict:
    """All GOPs of a video as stacked, zero-padded arrays (see the module docstring; MV
    int16 in CoViAR mode, whose values are integer pixels, float32 in sub-pixel mode)."""
    iframes, mvs, ress, ps = [], [], [], []
    for g in read_gops(path, accumulate=accumulate, coviar=coviar):
        h, w, _ = g.iframe.shape
        mv = np.zeros((P_PER_GOP, h, w, 2), g.mv.dtype)
        res = np.zeros((P_PER_GOP, h, w, 3), np.int16)
        mv[:g.p_frames] = g.mv
        res[:g.p_frames] = g.residual
        iframes.append(g.iframe)
        mvs.append(mv)
        ress.append(res)
        ps.append(g.p_frames)
    return {"iframe": np.stack(iframes), "mv": np.stack(mvs), "residual": np.stack(ress),
            "p_frames": np.asarray(ps, np.int16)}


def mode_attrs(accumulate: bool, coviar: bool) -> dict:
    return {"accumulate": bool(accumulate), "coviar": bool(coviar),
            "mode": ("accumulated" if accumulate else "per-frame")
            + (", coviar integer-pixel" if coviar else ", sub-pixel"),
            "mv_units": "pixels, x then y, content motion dst - src",
            "residual_units": "RGB intensity, frame - reference"}


def write_group(group, arrays: dict, mv_dtype=np.float32, compression: str | None = "gzip",
                level: int = 1) -> None:
    """Write one video's arrays into an open h5py group, one chunk per GOP. ``mv_dtype``
    float16 is exact for MPEG-4's half-pel values up to 2048 px and reads faster.
    gzip level 1 reads faster than lzf here (measured: MV 2 ms vs 10 ms for 3 GOPs)."""
    for name, a in arrays.items():
        if name == "mv":
            a = a.astype(mv_dtype)
        big = a.ndim > 1 and compression is not None  # lzf: no level
        group.create_dataset(name, data=a, chunks=(1,) + a.shape[1:] if a.ndim > 1 else None,
                             compression=compression if big else None,
                             compression_opts=level if big and compression == "gzip" else None)


def check_format(f, path: str | Path, version: int = VERSION) -> None:
    """FormatError unless ``f`` is ours at ``version`` (a ``hybrid prepare`` cache has
    its own, :data:`hybrid.data.arrayfile.CACHE_VERSION`)."""
    fmt, ver = f.attrs.get("format"), f.attrs.get("version")
    if fmt != FORMAT:
        raise FormatError(f"{path}: not a {FORMAT} file (format attribute {fmt!r})")
    if int(ver) != version:
        raise FormatError(f"{path}: format version {ver}, this code reads version {version}"
                          + ("; re-run `hybrid prepare` into a new file" if version != VERSION
                             else ""))


class GopWriter:
    """Appends GOPs to an open h5py group one at a time, in the layout above (one
    chunk per GOP), so memory holds one GOP whatever the video's length."""

    def __init__(self, group, mv_dtype=np.float32, compression: str | None = "gzip",
                 level: int = 1) -> None:
        self.group, self.mv_dtype, self.n = group, mv_dtype, 0
        self.opts = {"compression": compression,
                     "compression_opts": level if compression == "gzip" else None}

    def _create(self, h: int, w: int) -> None:
        g = self.group
        for name, shape, dt in (("iframe", (h, w, 3), np.uint8),
                                ("mv", (P_PER_GOP, h, w, 2), self.mv_dtype),
                                ("residual", (P_PER_GOP, h, w, 3), np.int16)):
            g.create_dataset(name, shape=(0,) + shape, maxshape=(None,) + shape,
                             chunks=(1,) + shape, dtype=dt, **self.opts)
        g.create_dataset("p_frames", shape=(0,), maxshape=(None,), dtype=np.int16,
                         chunks=(1024,))

    def add(self, gop) -> None:
        """Append one :class:`~hybrid.video.reader.GOP` (P-frame slots past its
        ``p_frames`` are zero)."""
        h, w, _ = gop.iframe.shape
        # before HDF5 writes (a full disk mid-write: a file HDF5 cannot close, a
        # segfault at exit); the GOP's uncompressed bytes bound what it adds
        ensure_free(self.group.file.filename, gop.iframe.nbytes + P_PER_GOP * h * w * (
            2 * np.dtype(self.mv_dtype).itemsize + 3 * 2))
        if self.n == 0:
            self._create(h, w)
        g, i, p = self.group, self.n, gop.p_frames
        for name in ("iframe", "mv", "residual", "p_frames"):
            g[name].resize(i + 1, axis=0)
        g["iframe"][i] = gop.iframe
        mv = np.zeros((P_PER_GOP, h, w, 2), self.mv_dtype)
        mv[:p] = gop.mv
        g["mv"][i] = mv
        del mv
        res = np.zeros((P_PER_GOP, h, w, 3), np.int16)
        res[:p] = gop.residual
        g["residual"][i] = res
        g["p_frames"][i] = p
        self.n += 1

    def shapes(self) -> dict:
        return {k: list(self.group[k].shape) for k in ("iframe", "mv", "residual",
                                                      "p_frames")}


def write_extract(video: str | Path, out: str | Path, accumulate: bool = True,
                  coviar: bool = True, source: str | Path | None = None) -> dict:
    """``hybrid extract``: one video (MPEG-4 GOP 12; see
    :func:`hybrid.video.transcode.as_mpeg4` for any other) into ``out``, streamed a
    GOP at a time, written under a temporary name and renamed when complete, so a
    failure (or an interrupt) leaves no half file. ``source``: the path recorded in the
    file [default: ``video``]. Returns the arrays' shapes."""
    import h5py

    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    try:
        # Ctrl-C is held while h5py writes (raised in one of its weakref callbacks it was
        # printed and lost) and live while a GOP is decoded
        with HeldInterrupt() as held, held.critical(), h5py.File(tmp, "w") as f:
            f.attrs.update({"format": FORMAT, "version": VERSION, "kind": "extract",
                            "source": str(source or video), **mode_attrs(accumulate, coviar)})
            writer = GopWriter(f)
            for g in held.waiting(read_gops(video, accumulate=accumulate, coviar=coviar)):
                writer.add(g)
                del g  # let the reader free it before it allocates the next GOP
            shapes = writer.shapes()
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return shapes


def read_extract(path: str | Path) -> tuple[dict, dict]:
    """(arrays, attributes) of a file written by :func:`write_extract`."""
    import h5py

    with h5py.File(path, "r") as f:
        check_format(f, path)
        return {k: f[k][()] for k in ("iframe", "mv", "residual", "p_frames")}, dict(f.attrs)
