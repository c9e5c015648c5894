"""Typed errors for bad video input. Every message names the file and the problem, so a
dataset run can report a bad video and go on, and the CLI can print it without a
traceback."""
from __future__ import annotations

from pathlib import Path


class VideoError(Exception):
    """Base class: ``path`` is the offending file, ``problem`` what is wrong with it."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class VideoNotFoundError(VideoError):
    """The file does not exist (or is not a regular file)."""


class EmptyVideoError(VideoError):
    """The file has zero bytes."""


class NotAVideoError(VideoError):
    """FFmpeg cannot read the file as any container or stream."""


class NoVideoStreamError(VideoError):
    """The container has no video stream (e.g. audio only)."""


class TruncatedVideoError(VideoError):
    """The file ends early: its container says more frames than could be decoded, or
    the container cannot be parsed though its header is that of a known format."""


class CorruptVideoError(VideoError):
    """The decoder reported damaged frames or failed part-way through the stream."""


class TooShortVideoError(VideoError):
    """Fewer frames than one GOP (an I-frame and its P-frames)."""


class UnsupportedStreamError(VideoError):
    """A stream the compressed-domain reader cannot use as is (not MPEG-4 Part 2 with
    I/P frames only); transcode it first (``hybrid.video.transcode``)."""
