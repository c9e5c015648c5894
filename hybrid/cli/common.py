"""What several commands share, declared once: the progress bar, the options every
data-reading command takes (``--video-size``, ``--fold``, ``--views``, ``--json``), and
the one conversion of the library's user errors into a one-line click error."""
from __future__ import annotations

import contextlib

import click

from hybrid.cli.types import VIDEO_SIZE, VIEWS

# = hybrid.video.transcode.DEFAULT_SIZE, prepare's (not imported: keeps --help instant;
# tests/test_data.py checks they agree)
DEFAULT_VIDEO_SIZE = (340, 256)
DEFAULT_VIDEO_SIZE_TEXT = "x".join(map(str, DEFAULT_VIDEO_SIZE))

VIEWS_HELP = ("SEGMENTSxCROPS. SEGMENTS must be a multiple of the segments the model was "
              "trained with (--segments of train, e.g. 3 allows 3, 6, 9, ...): the video is "
              "cut into SEGMENTS uniform segments, read as SEGMENTS / model-segments "
              "interleaved clips. CROPS is 1 (centre), 3 (start, centre, end of the longer "
              "side) or 5 (four corners and centre).")


def progress_bar(it, label):
    """click progress bar on stderr for long loops."""
    return click.progressbar(it, label=label, file=click.get_text_stream("stderr"),
                             show_pos=True)


def json_option(help: str = "Print one JSON object."):
    return click.option("--json", "as_json", is_flag=True, help=help)


def video_size_option(help: str, default: str | None = DEFAULT_VIDEO_SIZE_TEXT):
    """``--video-size WIDTHxHEIGHT``: the size a dataset folder's videos are read at."""
    return click.option("--video-size", type=VIDEO_SIZE, default=default,
                        show_default=default is not None, help=help)


def fold_option(help: str = "Split to use (UCF-101 and HMDB-51 have 3)."):
    return click.option("--fold", type=click.IntRange(1, 3), default=1, show_default=True,
                        help=help)


def views_option(default: str | None = "3x1", help: str = VIEWS_HELP):
    return click.option("--views", type=VIEWS, default=default,
                        show_default=default is not None, help=help)


@contextlib.contextmanager
def user_errors(*kinds: type[BaseException]):
    """Turn the library's user errors (``ValueError``, ``OSError`` and ``kinds``) raised
    inside the block into one-line click errors."""
    try:
        yield
    except click.ClickException:
        raise
    except (ValueError, OSError, *kinds) as exc:
        raise click.ClickException(str(exc)) from exc
