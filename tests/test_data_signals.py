"""Signals and the data paths: Ctrl-C of `hybrid run` (a real subprocess) reading
original videos by seeking (Lava live in the same process), and Ctrl-C of `hybrid prepare
--workers 2` (spawned workers): one line, no process left, exit nonzero, a re-run resumes.

A hung child is dumped with every thread's stack (PYTHONFAULTHANDLER, SIGABRT) into the
failure message, so a hang says where it hangs."""
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import pytest
from proctools import alive, descendants, sigint_default

from hybrid.data.dataset import CompressedVideoDataset
from hybrid.data.sources import load_split

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONFAULTHANDLER": "1"}


def _interrupt(proc: subprocess.Popen, ready, after: float, wait: float = 120) -> tuple[str, set]:
    """Wait until ``ready(descendants)``, let it run ``after`` s, SIGINT its process
    group as a terminal's Ctrl-C does (``proc`` started with ``start_new_session``), wait
    for its end. On a hang: SIGABRT (faulthandler dumps every thread), then kill; the
    stacks are in the returned stderr. Returns (stderr, every descendant seen)."""
    seen: set[int] = set()
    hung = False
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            seen |= descendants(proc.pid)
            if ready(seen):
                break
            time.sleep(0.1)
        assert proc.poll() is None and ready(seen), (
            f"never got going: {proc.stderr.read()[-3000:]}")
        time.sleep(after)
        seen |= descendants(proc.pid)
        assert proc.poll() is None, "it ended before the test could interrupt it"
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C: the whole process group
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            hung = True
            proc.send_signal(signal.SIGABRT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert not hung, f"hung {wait} s after SIGINT; stacks:\n{err[-12000:]}"
    deadline = time.time() + 30
    while time.time() < deadline and any(alive(p) for p in seen):
        time.sleep(0.2)
    left = [p for p in seen if alive(p)]
    for p in left:  # never leave them to slow the machine
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"processes left behind after Ctrl-C: {left}"
    return err, seen


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_of_run_while_seeking_original_videos(deployed, trained, tmp_path, workers):
    """`hybrid run ARTIFACT DATA` on a folder of original videos already MPEG-4 GOP 12 at
    the run's size: the loader seeks to the sampled GOPs (on the reader's TraceWorker)
    while Lava's processes run in the same process; Ctrl-C ends everything."""
    src = trained[0]
    data = tmp_path / "data"
    data.mkdir()
    for p in src.iterdir():
        (data / p.name).symlink_to(p)
    (data / "testlist01.txt").unlink()
    lines = (src / "testlist01.txt").read_text().split()
    (data / "testlist01.txt").write_text("\n".join(lines * 400) + "\n")
    # the run does read these originals by seeking (not by a whole extraction)
    items, _ = load_split(data, "test")
    ds = CompressedVideoDataset(data, items[:1], 2, train=False, crop=24, video_size=(64, 48))
    assert ds._seekable(data / items[0][0]) is not None
    proc = subprocess.Popen([sys.executable, "-m", "hybrid", "run", str(deployed.path),
                             str(data), "--workers", str(workers), "--video-size", "64x48"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=sigint_default)
    _interrupt(proc, lambda seen: len(seen) >= 12 * workers, after=2.0)
    assert proc.returncode != 0


@pytest.fixture
def dataset(tmp_path):
    from hybrid.video.synth import SynthConfig, make_dataset

    root = tmp_path / "ds"
    # 24 videos: about 10 s of prepare on a fast machine, so the Ctrl-C 3 s in is mid-run
    make_dataset(root, classes=2, per_class=12, seed=2, cfg=SynthConfig(size=(96, 64), frames=60))
    return root


@pytest.mark.slow
def test_ctrl_c_of_prepare_with_workers_is_one_line_and_resumes(dataset, tmp_path):
    """Ctrl-C of `hybrid prepare --workers 2`: the spawned workers ignore SIGINT (no
    KeyboardInterrupt traceback of theirs), the parent ends the pool and says so in one
    line, no process is left, the exit status is nonzero, no cache is half-published, and
    a re-run resumes to the full cache."""
    out = tmp_path / "c.h5"
    # transcoding to a larger size makes each video take long enough to interrupt
    cmd = [sys.executable, "-m", "hybrid", "prepare", "--store", "arrays", str(dataset), "-o",
           str(out),
           "--workers", "2", "--size", "320x240"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=sigint_default)
    err, seen = _interrupt(proc, lambda seen: len(seen) >= 2, after=3.0)
    assert proc.returncode != 0
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert len([ln for ln in err.splitlines() if ln.strip()]) <= 2, err
    res = subprocess.run(cmd + ["--json"], env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    assert s["videos"] == 24 and not s["failed"]
    assert s["prepared"] + s["already_done"] == 24
    with h5py.File(out, "r") as f:
        assert len(f["videos"]) == 24


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    from hybrid.video.synth import SynthConfig, render_video
    from hybrid.video.transcode import EncodeConfig, encode_mpeg4

    path = tmp_path_factory.mktemp("long") / "long.avi"
    encode_mpeg4(render_video(1, 3, SynthConfig(size=(160, 112), frames=240)), path,
                 EncodeConfig(size=(160, 112)))
    return path


def _trace_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "hybrid-trace" and t.is_alive()]


def test_ctrl_c_inside_a_seeking_read_ends_its_trace_thread(long_video):
    """SIGINT delivered to the main thread while it seeks and decodes GOPs (the trace
    thread busy with P-frames): KeyboardInterrupt reaches the caller, the trace thread
    ends with the read (nothing left to block the interpreter's exit), and the next read
    gives the same arrays as one never interrupted."""
    import threading

    import numpy as np

    from hybrid.video.seek import gop_index, read_gops_at

    starts = gop_index(long_video)
    idx = list(range(len(starts)))
    assert len(idx) == 20
    # the tracing thread is an option (inline by default): this is its test
    want = read_gops_at(long_video, starts, idx, trace_thread=True)
    t0 = time.perf_counter()
    read_gops_at(long_video, starts, idx, trace_thread=True)
    full = time.perf_counter() - t0
    main = threading.main_thread().ident
    inside = 0
    for k in range(40):  # signals spread over the read (a loaded machine reads slower)
        if inside == 8:
            break
        delay = full * (0.02 + 0.8 * (k % 10) / 10)
        timer = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        try:
            try:
                read_gops_at(long_video, starts, idx, trace_thread=True)
            except KeyboardInterrupt:
                inside += 1
            time.sleep(full + 0.5)  # a signal after the read lands here (not counted)
        except KeyboardInterrupt:
            pass
        finally:
            timer.join()
        deadline = time.time() + 10
        while _trace_threads() and time.time() < deadline:
            time.sleep(0.01)
        assert not _trace_threads(), f"trace thread left after a signal at {delay:.3f} s"
    assert inside == 8, f"only {inside} of 40 signals landed inside the read"
    got = read_gops_at(long_video, starts, idx)
    for key, v in want.items():
        assert np.array_equal(got[key], v), key


class _Obj:
    pass


def _ctrl_c_inside_a_weakref_callback() -> None:
    """SIGINT arriving while Python runs a weakref callback (as h5py's C code makes it
    do while it writes a cache)."""
    import weakref

    obj = _Obj()
    ref = weakref.ref(obj, lambda _: signal.raise_signal(signal.SIGINT))
    del obj  # the callback runs here; the handler runs inside it
    assert ref() is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the lost one
def test_ctrl_c_inside_a_weakref_callback_is_held_not_lost():
    """Without HeldInterrupt the KeyboardInterrupt is raised inside the callback, printed
    as "Exception ignored" and dropped (the run went on: `hybrid prepare` exited 0 after a
    Ctrl-C); inside a critical block it is held and raised when the block ends; while
    HeldInterrupt.waiting awaits the next item it is raised at once."""
    from hybrid.data.mpstart import HeldInterrupt

    _ctrl_c_inside_a_weakref_callback()  # the default handler: lost, nothing raised
    with HeldInterrupt() as held:
        reached = []
        with pytest.raises(KeyboardInterrupt), held.critical():
            _ctrl_c_inside_a_weakref_callback()
            reached.append("after")  # held: the block's work goes on to its end
        assert reached == ["after"]

        def items():
            yield 1
            signal.raise_signal(signal.SIGINT)  # while the next item is awaited
            yield 2

        got = []
        with pytest.raises(KeyboardInterrupt), held.critical():
            for x in held.waiting(items()):
                got.append(x)
        assert got == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_inside_an_extract_write_is_held_not_lost(tmp_path, monkeypatch):
    """`hybrid extract` wrote without the hold `prepare` has (issue 27, item 8): a Ctrl-C
    landing in an h5py weakref callback during a GOP's write was dropped and the
    extraction went on to write its file."""
    from hybrid.video import extract as ex
    from hybrid.video.synth import SynthConfig, make_dataset

    make_dataset(tmp_path / "ds", classes=2, per_class=2, seed=0,
                 cfg=SynthConfig(size=(64, 48), frames=36))
    video = sorted((tmp_path / "ds").rglob("*.avi"))[0]
    real_add = ex.GopWriter.add

    def add(self, gop):
        real_add(self, gop)
        if self.n == 1:
            _ctrl_c_inside_a_weakref_callback()

    monkeypatch.setattr(ex.GopWriter, "add", add)
    with pytest.raises(KeyboardInterrupt):
        ex.write_extract(video, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.h5.part").exists()


def test_ctrl_c_inside_the_trace_threads_start_ends_the_thread(monkeypatch):
    """A Ctrl-C landing in ``Thread.start()`` (the thread already running) escapes the
    TraceWorker's construction: the half-built worker still stops its thread (its
    finalizer was made after the start, and a suite run left the thread behind)."""
    import threading

    from hybrid.video.worker import TraceWorker

    real = threading.Thread.start

    def start_then_interrupt(self):
        real(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        TraceWorker(thread=True)
    monkeypatch.undo()
    deadline = time.time() + 10
    while _trace_threads() and time.time() < deadline:
        time.sleep(0.01)
    assert not _trace_threads()
