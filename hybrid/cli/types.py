"""click parameter types shared by every command: one per kind of value.

Sizes follow FFmpeg's convention everywhere: ``WIDTHxHEIGHT`` (``340x256`` is 340 px
wide, 256 high, as ``ffmpeg -s 340x256``). A single number ``N`` means a square
``NxN``. Commands whose code works in array order (height first) get the same user
convention and receive ``(height, width)`` (``order="hw"``); a square-only size (a crop
side) receives the side as an int.
"""
from __future__ import annotations

import math

import click

from hybrid.training.views import parse_views


class Size(click.ParamType):
    """``WIDTHxHEIGHT`` (or ``N`` for ``NxN``) -> ``(width, height)``, ``(height, width)``
    with ``order="hw"``, or the side ``N`` with ``square=True``. ``minimum``: smallest
    side; ``even``: both sides even (video encoders need it)."""

    name = "size"

    def __init__(self, minimum: int = 1, even: bool = False, order: str = "wh",
                 square: bool = False) -> None:
        if order not in ("wh", "hw"):
            raise ValueError(f"order must be 'wh' or 'hw', got {order!r}")
        self.minimum, self.even, self.order, self.square = minimum, even, order, square

    def get_metavar(self, param, ctx=None) -> str:  # click 8.1 and 8.2 signatures
        return "N" if self.square else "WIDTHxHEIGHT"

    def convert(self, value, param, ctx):
        if isinstance(value, (tuple, int)) and not isinstance(value, bool):
            return value  # a default already converted
        text = str(value).strip().lower()
        try:
            parts = [int(v) for v in text.split("x")]
        except ValueError:
            parts = []
        if len(parts) == 1:
            parts *= 2
        if len(parts) != 2:
            self.fail(f"expected WIDTHxHEIGHT like 340x256 (or N for NxN), got {value!r}",
                      param, ctx)
        w, h = parts
        if min(w, h) < self.minimum:
            self.fail(f"width and height must be >= {self.minimum}, got {value!r}", param, ctx)
        if self.even and (w % 2 or h % 2):
            self.fail(f"width and height must be even, got {value!r}", param, ctx)
        if self.square:
            if w != h:
                self.fail(f"must be square (one number N, or NxN), got {value!r}", param, ctx)
            return w
        return (w, h) if self.order == "wh" else (h, w)


VIDEO_SIZE = Size(minimum=16, even=True)  # what the MPEG-4 encoder accepts


class Shard(click.ParamType):
    """``K/N`` -> ``(K, N)``: the K-th (1-based) of N disjoint parts."""

    name = "K/N"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            k, n = (int(v) for v in str(value).split("/"))
        except ValueError:
            self.fail(f"expected K/N like 2/8, got {value!r}", param, ctx)
        if not 1 <= k <= n:
            self.fail(f"need 1 <= K <= N, got {value!r}", param, ctx)
        return k, n


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which pass every range check
    (``nan <= 0`` is False) and would end in a traceback or a run of NaN losses."""

    name = "finite float"

    def _describe_range(self) -> str:
        if self.min is None and self.max is None:
            return ""  # click's own text would read "x<=None"
        return super()._describe_range()

    def convert(self, value, param, ctx):
        try:  # finiteness first: inf would otherwise be reported as out of range
            finite = math.isfinite(float(value))
        except (TypeError, ValueError):
            finite = True  # not a number: click's own message says so
        if not finite:
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(value, param, ctx)


class Views(click.ParamType):
    """``SEGMENTSxCROPS`` (e.g. ``8x1``) -> ``(segments, crops)``
    (:func:`hybrid.training.views.parse_views`)."""

    name = "views"

    def get_metavar(self, param, ctx=None) -> str:
        return "SxC"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value  # a preset's value
        try:
            return parse_views(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


VIEWS = Views()


# Adam's step is about lr per weight: past 10 every weight jumps by more than any trained
# value, and lr 1e300 overflowed to a traceback; the runs' lr is 1e-4..1e-2
LEARNING_RATE = FiniteFloatRange(0, 10, min_open=True)
