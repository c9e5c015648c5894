"""Process helpers for the tests that signal real subprocesses (tests/test_signals.py,
test_deploy.py, test_data_signals.py): what a command left running, read from /proc."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
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


def run_or_dump(args: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True, text=True)`` that, past ``timeout``,
    makes the child dump every thread's stack (faulthandler on SIGABRT) and fails the
    test with that dump instead of a bare timeout. Output goes through files (a pipe
    stays open while any process left behind holds it); the process group is killed."""
    env = {**kw.pop("env", os.environ), "PYTHONFAULTHANDLER": "1"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=err, text=True,
                                start_new_session=True, **kw)
        try:
            proc.wait(timeout=timeout)
            hung = False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            hung = True
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if hung:
        raise AssertionError(f"{' '.join(args[1:])} hung for {timeout} s; its stacks:\n"
                             f"{stderr[-12000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def synth_set(tmp_path_factory, name: str, classes: int, per_class: int, frames: int,
              seed: int = 0):
    """A `hybrid synth` set of 64x48 videos in a fresh temporary folder (test fixtures)."""
    from hybrid.video.synth import SynthConfig, make_dataset

    out = tmp_path_factory.mktemp(name) / "ds"
    make_dataset(out, classes=classes, per_class=per_class, seed=seed,
                 cfg=SynthConfig(size=(64, 48), frames=frames))
    return out
