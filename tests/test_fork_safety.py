"""Lava forks its actor processes. A child whose garbage collector frees a PyAV decoder
left in a reference cycle by the parent joins frame threads that exist only in the parent
and blocks for good (CI hung 90 minutes on it). Each case runs in a subprocess with a
timeout, so the suite fails instead of hanging."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

# a threaded H.264 decoder left in a reference cycle, as a half-read video leaves one
CYCLE = textwrap.dedent("""
    import av, contextlib, gc, os, sys, numpy as np
    IMPORTS  # first: an import's allocations would let the parent collect the cycle
    path = sys.argv[1]
    with av.open(path, "w") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = 320, 240, "yuv420p"
        st.codec_context.options = {"bf": "2"}
        rng = np.random.default_rng(0)
        for t in range(20):
            g = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), np.uint8),
                                           format="rgb24")
            g.pts = t
            out.mux(st.encode(g))
        out.mux(st.encode(None))
    c = av.open(path)
    s = c.streams.video[0]
    s.thread_type = "AUTO"
    for i, f in enumerate(c.decode(s)):
        if i == 3:
            break
    loop = [c, s]
    loop.append(loop)
    del c, s, loop, f
""")

FORK = CYCLE.replace("IMPORTS", "from neuro.shutdown import forkable_heap") + textwrap.dedent(
    """
    guard = sys.argv[2] == "guard"
    with forkable_heap() if guard else contextlib.nullcontext():
        pid = os.fork()
    if pid == 0:
        gc.collect()
        os._exit(0)
    os.waitpid(pid, 0)
    assert gc.get_freeze_count() == 0, "the parent's heap stayed frozen"
    print("child done")
""")

# a smoke test: Lava's compiler allocates enough that the parent may collect the cycle
# before it forks, so this case passes without the guard too; the case above is the proof
LAVA = CYCLE.replace("IMPORTS", "from neuro.selfcheck import check_lava_lif; "
                     "import lava.proc.lif.process, lava.proc.monitor.process, "
                     "lava.magma.core.run_configs") + textwrap.dedent("""
    ok, msg = check_lava_lif()
    assert ok, msg
    print("lava done")
""")


def _run(code, *args, timeout):
    """Run in its own session; on a timeout kill the whole group (the blocked child too)."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_unguarded_fork_hangs_and_guarded_does_not(tmp_path):
    """The mechanism itself: without the guard the child blocks (the reason it exists)."""
    with pytest.raises(subprocess.TimeoutExpired):
        _run(FORK, str(tmp_path / "a.mp4"), "none", timeout=20)
    res = _run(FORK, str(tmp_path / "b.mp4"), "guard", timeout=60)
    assert res.returncode == 0 and "child done" in res.stdout, res.stderr


@pytest.mark.slow
def test_lava_starts_beside_a_decoder_cycle(tmp_path):
    res = _run(LAVA, str(tmp_path / "c.mp4"), timeout=300)
    assert res.returncode == 0 and "lava done" in res.stdout, res.stderr
