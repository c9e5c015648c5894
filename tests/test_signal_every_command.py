"""Ctrl-C and SIGTERM to every long-running command (issue 27, "Must show"): sent to the
whole process group once its workers or Lava processes are up; the command must exit
130 / 143 with at most a few lines on stderr, leaving no process of its group, no new
entry in its temporary folder and no shared-memory block."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from proctools import alive, descendants

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path),
       "PYTHONFAULTHANDLER": "1"}  # a hang, ended by SIGABRT, shows every thread's stack
VIDEO = "64x48"  # the conftest dataset's own size
LAVA = 5  # descendants once Lava is up: its actors, shared-memory manager, tracker
HOOK = Path(__file__).parent / "signal_hook"  # holds a worker in its start (sitecustomize)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """A 64x48 video of 40 GOPs: explain has work for longer than the wait."""
    from hybrid.video.synth import SynthConfig, make_dataset

    out = tmp_path_factory.mktemp("long") / "ds"
    make_dataset(out, classes=2, per_class=2, seed=0, cfg=SynthConfig(size=(64, 48),
                                                                      frames=480))
    return sorted(out.rglob("*.avi"))[0]


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """The conftest set's 3 classes, 60 short videos each (45 in fold 1's test split):
    `run --workers 2` still running 2 s after every Lava runtime of its workers is up."""
    from hybrid.video.synth import SynthConfig, make_dataset

    out = tmp_path_factory.mktemp("many") / "ds"
    make_dataset(out, classes=3, per_class=60, seed=2, cfg=SynthConfig(size=(64, 48),
                                                                       frames=24))
    return out


def _commands(data: Path, many: Path, ckpt: Path, art: Path, video: Path,
              out: Path) -> dict:
    """name -> (argv after `hybrid`, descendants that mean its workers or Lava are up).
    ``prepare`` and ``run`` read the ``many`` set: on ``data`` (12 videos, 3 to run), a
    quiet machine had finished them within 0.5 s of their workers or Lava being up."""
    common = ["--video-size", VIDEO, "--size", "24", "--segments", "2", "--batch-size",
              "3", "--epochs", "50", "--workers", "2"]
    return {
        "prepare": (["prepare", many, "--store", "arrays", "-o", out / "c.h5", "--workers",
                     "2"], 2),
        # the video store (the default): done within the general case's wait here
        "prepare video": (["prepare", many, "-o", out / "vc", "--workers", "2"], 2),
        "train": (["train", data, "-o", out / "run", *common], 2),
        "pretrain": (["pretrain", data, "-o", out / "pre", *common], 2),
        # 48 segments x 5 crops of 9 videos: 40 s here, still running when signalled
        # on a machine several times faster (at 12x5 one was done, exit 0)
        "eval": (["eval", ckpt, data, "--video-size", VIDEO, "--views", "48x5", "--split",
                  "train", "--plot", out / "cm.png"], 0),
        "run": (["run", art, many, "--video-size", VIDEO, "--fold", "1"], LAVA),
        # two spawned workers, each with its Lava processes
        "run --workers 2": (["run", art, many, "--video-size", VIDEO, "--fold", "1",
                             "--workers", "2"], 2 + 2 * LAVA),
        # 48x5 views of the 9 training videos: a quiet machine had profiled the test
        # split (3 videos x 1 view) within 0.5 s of Lava being up, so the signal came
        # after the report (then -2: see test_a_signal_after_the_result_*)
        "profile": (["profile", art, data, "--spikes", "lava", "--video-size", VIDEO,
                     "--views", "48x5", "--split", "train"], LAVA),
        "chip": (["chip", art, data, "--video-size", VIDEO, "--sequences", "64"], LAVA),
        "stm verify": (["stm", "verify", "--sequences", "2000"], LAVA),
        "explain": (["explain", ckpt, video, "-o", out / "ex", "--segments", "40",
                     "--video-size", VIDEO], 0),
    }


def _shm_of(pids) -> set[str]:
    """Shared-memory names the processes ``pids`` map or hold open."""
    held = set()
    for pid in pids:
        d = Path(f"/proc/{pid}")
        with contextlib.suppress(OSError):
            held.update(line.split("/dev/shm/", 1)[1].split()[0]
                        for line in (d / "maps").read_text().splitlines()
                        if "/dev/shm/" in line)
        with contextlib.suppress(OSError):
            for fd in (d / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("/dev/shm/"):
                        held.add(target[len("/dev/shm/"):])
    return held


def _leaked_shm(seen: set[str]) -> set[str]:
    """Of the blocks the command's processes used (``seen``), those still there that no
    live process uses: left behind. (Only the command's own: other jobs on a shared
    machine make and leave blocks of their own meanwhile.)"""
    left = {n for n in seen if os.path.exists(f"/dev/shm/{n}")}
    return left - _shm_of(int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit())


@pytest.mark.parametrize("name", [
    "prepare", "train", "pretrain",
    # was exit 0 at 12x5 views: done before the signal on a faster machine (now 48x5);
    # was exit -2 after "interrupted" (a Ctrl-C through code run from text: see
    # test_a_ctrl_c_from_code_run_from_text_exits_with_the_commands_status)
    "eval", "run", "run --workers 2",
    # SIGINT: ended 0 once in a fresh-clone CI run (the Ctrl-C lost; a dropped one is
    # now sent again: test_a_ctrl_c_python_dropped_still_ends_the_command_130); hung at
    # its exit twice in loops here (tests/test_lava_interrupts.py: a memory manager
    # whose shutdown was interrupted, a runner its owner never got)
    "profile", "chip", "stm verify", "explain"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_the_command_cleanly(name, sig, trained, deployed, long_video, many,
                                         tmp_path):
    data, ckpt = trained
    args, up = _commands(data, many, ckpt, deployed.path, long_video, tmp_path)[name]
    _signal_and_check(name, args, sig, tmp_path, up=up)


@pytest.mark.parametrize("name", ["prepare", "prepare video", "train", "pretrain",
                                  "run --workers 2"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_a_worker_starts_ends_the_command_cleanly(name, sig, trained, deployed,
                                                                 long_video, many, tmp_path):
    """The signal lands while a spawned or fork-server worker is still starting (held
    there by tests/signal_hook until the command ends): a fork-server worker the parent
    did not stop went on starting after the parent had ended and printed a traceback
    (FileNotFoundError rebuilding a lock the parent had removed; a fresh-clone CI run)."""
    data, ckpt = trained
    args, _ = _commands(data, many, ckpt, deployed.path, long_video, tmp_path)[name]
    _signal_and_check(name, args, sig, tmp_path, hold=tmp_path / "hold")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_command_alone_while_a_run_worker_starts(sig, trained, deployed,
                                                                 long_video, many, tmp_path):
    """The signal reaches `run --workers 2` alone (a `kill PID`), not its workers, while
    one is still starting: the command was inside ``Process.start()`` (writing the
    worker's task), where SIGTERM was not held: the worker, untracked, went on after
    the command had ended and printed a traceback ("pickle data was truncated")."""
    data, ckpt = trained
    args, _ = _commands(data, many, ckpt, deployed.path, long_video,
                        tmp_path)["run --workers 2"]
    _signal_and_check("run --workers 2", args, sig, tmp_path, hold=tmp_path / "hold",
                      alone=True)


def test_a_killed_run_worker_ends_the_run_with_one_line(trained, deployed, long_video,
                                                        many, tmp_path):
    """SIGKILL of one `hybrid run --workers 2` worker (the OOM killer, a user's kill):
    the run ends at once with one line naming the worker and the signal, exit 1, the
    other worker and every Lava process ended (it waited for the other worker to finish
    and then printed a RuntimeError traceback)."""
    data, ckpt = trained
    args, _ = _commands(data, many, ckpt, deployed.path, long_video,
                        tmp_path)["run --workers 2"]
    # every Lava runtime of both workers up (a runner per STM), and a moment for the
    # workers to report their shared memory: the killed one's blocks, which its dying
    # Lava manager cannot unlink, are unlinked by the command (in CI they were left to
    # multiprocessing's resource tracker, after the command and with a warning)
    err = _signal_and_check("run --workers 2", args, signal.SIGKILL, tmp_path,
                            up=2 + 2 * 2 * LAVA, worker=True, settle=2.0)
    assert "was killed by SIGKILL" in err, err


def _signal_and_check(name: str, args: list, sig: int, tmp_path: Path, up: int = 0,
                      hold: Path | None = None, worker: bool = False,
                      alone: bool = False, settle: float = 0.5) -> str:
    """Run ``hybrid ARGS`` in its own process group, send ``sig`` to the group (to one of
    its workers: ``worker``; to the command alone: ``alone``) once ``up`` descendants
    are there (at least 4 s in) and ``settle`` seconds more, or with ``hold``: once a
    worker is held in its start (tests/signal_hook), and check the exit and what is
    left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "log"
    env = {**ENV, "TMPDIR": str(tmp)}
    if hold is not None:
        hold.mkdir()
        env.update(HYBRID_TEST_HOLD_START=str(hold),
                   PYTHONPATH=os.pathsep.join([str(HOOK), env["PYTHONPATH"]]))
    seen: set[str] = set()  # shared memory the command's processes used
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "hybrid", *map(str, args)],
                                env=env, stdout=f, stderr=f, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while (not (hold / "held").exists() if hold is not None else
               len(descendants(proc.pid)) < up or time.monotonic() < deadline - 116):
            assert proc.poll() is None, f"{name} ended early ({proc.returncode}): " \
                                        f"{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{name}: its processes never came up"
            seen |= _shm_of({proc.pid, *descendants(proc.pid)})
            time.sleep(0.05)
        time.sleep(settle if hold is None else 0.2)
        kids = descendants(proc.pid)
        seen |= _shm_of({proc.pid, *kids})
        assert proc.poll() is None, f"{name} finished before the signal: make it longer"
        if worker:  # one of its worker processes (spawned: "--multiprocessing-fork")
            os.kill(min(k for k in kids if b"--multiprocessing-fork" in
                        Path(f"/proc/{k}/cmdline").read_bytes()), sig)
        elif alone:
            os.kill(proc.pid, sig)
        else:
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGABRT)  # faulthandler: every thread's stack
            time.sleep(2)
            pytest.fail(f"{name} hung after {sig.name}: {log.read_text()[-3000:]}")
    finally:
        # alone, or a worker killed: what it left goes on (checked below: the resource
        # tracker, ending last, would warn of shared memory nobody unlinked)
        if not (alone or worker) or proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 15  # (what a worker ending last prints counts too)
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    running = [k for k in kids if alive(k)]
    for k in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(k, signal.SIGKILL)
    err = log.read_text()
    want = 1 if worker else 128 + sig
    assert proc.returncode == want, f"{name}: exit {proc.returncode}\n{err[-3000:]}"
    lines = [line for line in err.split("\n") if line.strip()]
    assert "Traceback" not in err and len(lines) <= 4, f"{name}:\n{err[-3000:]}"
    if worker:  # its blocks, reported, are the command's to unlink; the tracker's warning
        # said it left them (a worker ended while its Lava runtimes still compile has not
        # reported them yet: those stay the resource tracker's, after the command)
        assert "leaked" not in err, f"{name}:\n{err[-3000:]}"
    assert not running, f"{name}: processes left running"
    # kept across runs by libraries, not per-run leftovers: torch's compile cache
    # (torchinductor_USER) and onnxruntime's session id (.ses, written on any run)
    left = [p for p in tmp.iterdir()
            if not p.name.startswith("torchinductor_") and p.name != ".ses"]
    assert not left, f"{name} left in TMPDIR: {left}"
    deadline = time.monotonic() + 10  # multiprocessing's resource tracker, ending last,
    while _leaked_shm(seen) and time.monotonic() < deadline:  # unlinks what it holds
        time.sleep(0.2)
    assert not _leaked_shm(seen), f"{name} left shared memory: {_leaked_shm(seen)}"
    return err
