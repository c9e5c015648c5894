"""What several commands share, declared once: the progress bar, the options every
data-reading command takes (``--video-size``, ``--fold``, ``--views``, ``--json``), and
the one conversion of the library's user errors into a one-line click error."""
from __future__ import annotations

import contextlib
import re

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


ERASE_LINE = "\033[F\033[K"  # cursor to the start of the line above, clear it
_named: set[str] = set()  # stages named on a stderr that is not a terminal


class _Unshown:
    """A bar that is not drawn: iterates ``it``; ``update`` (a loop that counts its own
    steps, like click's bar) does nothing."""

    def __init__(self, it) -> None:
        self.it = it

    def __iter__(self):
        return iter(self.it)

    def update(self, n_steps: int) -> None:
        pass


@contextlib.contextmanager
def progress_bar(it, label):
    """Progress of a long loop on stderr. On a terminal one updating line: a click bar
    (label, position, time left) drawn in place, erased when its loop ends, so the next
    stage's bar takes its place and results echoed between them stay. Elsewhere (a log
    file, a pipe) the label once per stage: a label that differs from one already
    printed only by its numbers ("epoch 2/50" after "epoch 1/50", pretraining's
    "held-out" of each task) prints nothing, so a long run's log holds its results, not
    a line per pass."""
    err = click.get_text_stream("stderr")
    if not err.isatty():
        stage = re.sub(r"\d+", "#", label)
        if stage not in _named:
            _named.add(stage)
            click.echo(label, err=True)
        yield _Unshown(it)
        return
    with click.progressbar(it, label=label, file=err, show_pos=True) as bar:
        yield bar
    err.write(ERASE_LINE)  # the finished bar's line (click ends it with a newline)
    err.flush()


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
