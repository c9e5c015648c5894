"""The DataLoader between datasets and the model (hybrid.data.loader): workers never
forked from the training process, a sample independent of the worker that reads it
(so a resumed run repeats an uninterrupted one), unreadable videos reported by the
training process, and a Lava import still possible after workers started."""
import multiprocessing as mp

import pytest
import torch

from hybrid.data.dataset import CompressedVideoDataset
from hybrid.data.loader import Loader, SeededSampler, SkipBadVideos, loader_options
from hybrid.data.sources import load_split
from hybrid.video.synth import SynthConfig, make_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    make_dataset(out, classes=2, per_class=3, seed=3, cfg=SynthConfig(size=(64, 48), frames=30))
    return out


@pytest.fixture
def unset_default():
    """The default start method unset for the test (as in a fresh `hybrid` process)."""
    before = mp.get_start_method(allow_none=True)
    mp.set_start_method(None, force=True)
    yield
    mp.set_start_method(before, force=True)


def _epochs(ds, workers: int, epochs: list[int]) -> list[list[dict]]:
    sampler = SeededSampler(torch.utils.data.SequentialSampler(ds), seed=5)
    loader = Loader(SkipBadVideos(ds), 2, sampler=sampler,
                    **loader_options(workers, torch.device("cpu")))
    out = []
    for e in epochs:
        sampler.set_epoch(e)
        out.append(list(loader))
    return out


def test_samples_do_not_depend_on_workers_or_on_earlier_epochs(data, unset_default):
    items, _ = load_split(data, "train")
    items = items + [("move_up/not_there.avi", 0)]  # unreadable: carried, not logged
    ds = CompressedVideoDataset(data, items, segments=2, train=True, crop=24,
                                video_size=(64, 48), seed=0)
    inline = _epochs(ds, 0, [0, 1])
    spawned = _epochs(ds, 2, [0, 1])  # persistent workers: epoch 1 after epoch 0
    resumed = _epochs(ds, 2, [1])  # fresh workers at epoch 1 (a resumed run)
    assert mp.get_start_method(allow_none=True) is None  # Lava can still set it
    for a, b in ((inline[0], spawned[0]), (inline[1], spawned[1]), (inline[1], resumed[0])):
        assert len(a) == len(b) == (len(items) + 1) // 2
        for x, y in zip(a, b):
            assert x["skipped"] == y["skipped"]
            assert x.keys() == y.keys()
            for k in x.keys() - {"skipped"}:
                assert torch.equal(x[k], y[k]), k
    assert not torch.equal(inline[0][0]["iframe"], inline[1][0]["iframe"])  # fresh draws
    skipped = [m for b in inline[0] for m in b["skipped"]]
    assert len(skipped) == 1 and "not_there.avi" in skipped[0]


def test_workers_are_not_forked_from_the_training_process():
    ctx = loader_options(2, torch.device("cpu"))["multiprocessing_context"]
    assert ctx.get_start_method() in ("spawn", "forkserver")
    assert loader_options(0, torch.device("cpu"))["multiprocessing_context"] is None


def test_prepare_with_workers_leaves_the_default_start_method_unset(data, tmp_path,
                                                                     unset_default):
    from hybrid.data.cache import PrepareConfig, prepare

    res = prepare(data, tmp_path / "c.h5", PrepareConfig(size=(64, 48)), workers=2)
    assert res["prepared"] == res["videos"] and not res["failed"]
    assert mp.get_start_method(allow_none=True) is None


def test_a_pool_worker_deaf_to_sigterm_is_killed_not_waited_for():
    """`stop_pool` kills a worker still alive a grace period after its SIGTERM: a worker
    whose handler never ran (the signal taken by another of its threads while its main
    thread waited on the task queue) made `prepare` hang at its end in the suite."""
    import signal
    import threading
    import time

    from hybrid.data.mpstart import spawn_pool, stop_pool

    pool = spawn_pool(1)
    pool.apply(signal.signal, (signal.SIGTERM, signal.SIG_IGN))  # deaf, as that worker was
    (proc,) = pool._pool
    pool.apply_async(time.sleep, (600,))  # and busy: no sentinel reaches it either
    time.sleep(1.0)
    done = threading.Event()
    t = threading.Thread(target=lambda: (stop_pool(pool, grace_s=1.0), done.set()),
                         daemon=True)
    t.start()
    t.join(60)
    if not done.is_set():  # the fix is missing: do not leave the worker behind
        proc.kill()
    assert done.is_set(), "stop_pool waited for a worker deaf to SIGTERM"
    assert proc.exitcode == -signal.SIGKILL



# a pool task (exec of this text: a test module is not importable in a spawned worker):
# a scratch folder of the worker, held until it is killed
HOLD_SCRATCH = """
import time
from deploy.atomic import scratch_dir
with scratch_dir("test"):
    time.sleep(600)
"""


def test_a_killed_pool_workers_scratch_folder_is_removed_by_stop_pool(tmp_path, monkeypatch):
    """A `prepare` worker killed outright (the stop's SIGKILL of a worker deaf to its
    SIGTERM) left its transcoding folder in TMPDIR (a loop of the signal tests)."""
    import signal
    import tempfile
    import time

    from hybrid.data.mpstart import spawn_pool, stop_pool

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again, here and in workers
    pool = spawn_pool(1)
    (proc,) = pool._pool
    pool.apply_async(exec, (HOLD_SCRATCH,))
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(f"hybrid-test-{proc.pid}-*")):
        assert time.monotonic() < deadline, "the worker made no scratch folder"
        time.sleep(0.1)
    proc.kill()  # outright: no clean-up of its own
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL and list(tmp_path.glob("hybrid-test-*"))
    stop_pool(pool, grace_s=1.0)
    assert not list(tmp_path.glob("hybrid-test-*"))


def test_stop_pool_ends_when_a_killed_worker_held_a_queue_lock():
    """A worker killed while it wrote a result holds the result queue's lock for good;
    ``Pool.terminate`` puts its sentinels there and waited for ever (`prepare` hung
    after SIGTERM in a loop of the signal tests). The lock is taken here, as that
    worker left it: `stop_pool` returns after its grace and bound."""
    import threading
    import time

    from hybrid.data import mpstart

    pool = mpstart.spawn_pool(1)
    # taken for good, as a killed worker leaves it (the pool's stop thread stays waiting
    # on it, a daemon thread, as it would in the command)
    assert pool._outqueue._wlock.acquire(timeout=10)
    t0 = time.monotonic()
    done = threading.Event()
    threading.Thread(target=lambda: (mpstart.stop_pool(pool, grace_s=1.0), done.set()),
                     daemon=True).start()
    finished = done.wait(1.0 + mpstart.STOP_AFTER_KILL_S + 30)
    assert finished, "stop_pool waited on the lock a killed worker held"
    assert time.monotonic() - t0 < 1.0 + mpstart.STOP_AFTER_KILL_S + 10
    assert not any(p.is_alive() for p in pool._pool)


DROPPED_HAND_OVER = """
import os, socket, sys, time
import torch
from multiprocessing import resource_sharer
from hybrid.data.loader import Loader, loader_options

class Handing(torch.utils.data.Dataset):  # a worker offering a file descriptor, as a
    def __len__(self):                     # batch's shared memory is handed over
        return 1

    def __getitem__(self, i):
        df = resource_sharer.DupFd(os.open(os.devnull, os.O_RDONLY))
        return {"address": df._id[0]}

if __name__ == "__main__":
    loader = Loader(Handing(), batch_size=1, **loader_options(1, torch.device("cpu")))
    it = iter(loader)
    address = next(it)["address"][0]
    s = socket.socket(socket.AF_UNIX)  # the training process, interrupted mid-hand-over
    s.connect(address)
    s.close()
    time.sleep(1.0)  # the worker's resource sharer meets the dropped connection
    del it, loader
    print("done", flush=True)
"""


def test_a_hand_over_the_training_process_dropped_prints_nothing_in_the_worker(tmp_path):
    """A Ctrl-C that cut the training process's fetch of a batch's shared memory from a
    loader worker left the worker's resource-sharer thread printing a BrokenPipeError
    traceback under "interrupted" (a CI run of `pretrain --workers 2`)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "drop.py"  # a file: the fork server imports the main module
    script.write_text(DROPPED_HAND_OVER)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1",
                                         "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
