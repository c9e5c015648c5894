"""Progress on stderr (issue 27, item 8): one updating line on a terminal, the label
once per stage elsewhere; labels were echoed as a line per pass ("epoch 1/50",
"epoch 1 held-out", "epoch 2/50", ...) instead of one updating bar."""
import os
import pty
import subprocess
import sys

import pytest

STAGES = """
import click
from hybrid.cli.common import progress_bar
for epoch in (1, 2, 3):
    for label in (f"epoch {epoch}/3", f"epoch {epoch} held-out"):
        with progress_bar(range(4), label) as bar:
            for _ in bar:
                pass
    click.echo(f"result {epoch}", err=True)
with progress_bar(range(3), "counted") as bar:  # a loop that counts its own steps
    for _ in range(3):
        bar.update(1)
"""


def _screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text``: carriage return, newline, erase to the
    end of the line (ESC[K) and cursor to the previous line (ESC[F); other escape
    sequences (the cursor's visibility) change nothing on screen."""
    lines, row, col = [""], 0, 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\033":
            j = i + 2
            while j < len(text) and not text[j].isalpha():
                j += 1
            code = text[i + 2:j + 1]
            if code == "K":
                lines[row] = lines[row][:col]
            elif code == "F":
                row, col = max(row - 1, 0), 0
            i = j + 1
            continue
        if c == "\r":
            col = 0
        elif c == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + c + line[col + 1:]
            col += 1
        i += 1
    return [line.rstrip() for line in lines if line.strip()]


def test_a_log_gets_each_stage_once(tmp_path):
    """stderr not a terminal (a log file): "epoch 1/3" and "epoch 1 held-out" once,
    not for every epoch; what the command echoes stays."""
    err = tmp_path / "err"
    with open(err, "w") as f:
        subprocess.run([sys.executable, "-c", STAGES], stderr=f, check=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert err.read_text().splitlines() == [
        "epoch 1/3", "epoch 1 held-out", "result 1", "result 2", "result 3", "counted"]


@pytest.mark.skipif(not hasattr(pty, "openpty"), reason="no pseudo-terminal")
def test_a_terminal_shows_one_updating_line(tmp_path):
    """stderr a terminal: each stage's bar is drawn in place and erased when it ends, so
    the screen holds the results and no finished bar."""
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", STAGES], stderr=sub,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
                                 "TERM": "xterm"})
    os.close(sub)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0
    text = out.decode()
    assert "epoch 3 held-out" in text  # the bars were drawn
    assert _screen(text) == ["result 1", "result 2", "result 3"], text
