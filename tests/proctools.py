"""Process helpers for the tests that signal real subprocesses (tests/test_signals.py,
test_deploy.py, test_data_signals.py): what a command left running, read from /proc."""
from __future__ import annotations

import signal
from pathlib import Path


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid``."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def alive(pid: int) -> bool:
    """``pid`` exists and is neither a zombie nor dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def sigint_default() -> None:
    """``preexec_fn``: the child's SIGINT back to its default before exec. A test run
    started in the background of a non-interactive shell has SIGINT ignored; the child
    would inherit that and never see the Ctrl-C under test."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
