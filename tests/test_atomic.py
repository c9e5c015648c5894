"""Atomic writes (deploy/atomic.py) give files and folders the mode the umask asks for, as
a plain open / mkdir would (mkstemp alone gives 0600 / mkdtemp 0700)."""
import os
import stat
from pathlib import Path

import pytest

from deploy.atomic import staged_dir, write_file, write_path


@pytest.fixture(params=[0o022, 0o027, 0o002])
def mask(request):
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_files_and_folders_honour_the_umask(tmp_path, mask):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what the user expects: a plain open's mode
    assert _mode(plain) == 0o666 & ~mask
    f = write_file(tmp_path / "a.bin", lambda fh: fh.write(b"abc"))
    assert f.read_bytes() == b"abc" and _mode(f) == _mode(plain)
    p = write_path(tmp_path / "b.bin", lambda tmp: tmp.write_bytes(b"xyz"))
    assert p.read_bytes() == b"xyz" and _mode(p) == _mode(plain)
    with staged_dir(tmp_path / "art") as d:
        (d / "m.json").write_text("{}")
    ref = tmp_path / "ref"
    ref.mkdir()
    assert _mode(tmp_path / "art") == _mode(ref) == 0o777 & ~mask
    assert _mode(tmp_path / "art" / "m.json") == _mode(plain)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.bin", "art", "b.bin",
                                                          "plain.txt", "ref"]  # no temp left


def test_checkpoint_metrics_and_mapping_honour_the_umask(tmp_path, mask):
    from hybrid.training import checkpoint
    from hybrid.training.metrics import plot_metrics, write_metrics

    checkpoint.save(tmp_path / "ck.pt", model_config={}, classes=[], model={}, epoch=0)
    rows = [{"epoch": 1, "lr": 1e-3, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.1,
             "val_acc": 0.25, "seconds": 1.0}]
    write_metrics(tmp_path / "metrics.csv", rows)
    plot_metrics(rows, tmp_path / "metrics.png")
    for name in ("ck.pt", "metrics.csv", "metrics.png"):
        assert _mode(tmp_path / name) == 0o666 & ~mask, name


def test_write_path_removes_its_temporary_file_on_error(tmp_path):
    def fail(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_path(tmp_path / "x.h5", fail)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_failed_swap_keeps_the_old_folder_and_leaves_nothing(tmp_path, monkeypatch, fail_at):
    """The rename of the old folder aside (1) or of the new one into place (2) fails: the
    old folder stays as it was, and no staging or set-aside folder is left."""
    import deploy.atomic as A

    out = tmp_path / "art"
    out.mkdir()
    (out / "old.txt").write_text("old")
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == fail_at:
            raise OSError(16, "Device or resource busy")
        return real(src, dst)

    monkeypatch.setattr(A.os, "replace", replace)
    with pytest.raises(OSError, match="busy"):
        with staged_dir(out, overwrite=True) as d:
            (d / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["art"]
    assert [p.name for p in out.iterdir()] == ["old.txt"]


def test_a_killed_writers_staging_folder_is_removed_by_the_next(tmp_path):
    """SIGKILL runs no clean-up: `hybrid synth` killed mid-write left its hidden
    .OUT.partial-* folder for good (issue 27, item 4). The next writer of OUT removes
    the staging folders of writers no longer running; a live writer's stay."""
    import signal
    import subprocess
    import sys
    import time

    script = ("import sys, time\nfrom deploy.atomic import staged_dir\n"
              "with staged_dir(sys.argv[1]) as d:\n"
              "    (d / 'a').write_text('x'); print('staged', flush=True); time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "ds"

    def writer():
        p = subprocess.Popen([sys.executable, "-c", script, str(out)], env=env,
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "staged"
        return p

    killed, live = writer(), writer()
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=20)
    time.sleep(0.1)
    try:
        staging = sorted(p.name for p in tmp_path.iterdir())
        assert len(staging) == 2 and all(".ds.partial-" in n for n in staging), staging
        with staged_dir(out) as d:
            (d / "b").write_text("y")
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted(["ds", *(n for n in staging if f"-{live.pid}-" in n)]), left
    finally:
        live.kill()
        live.wait(timeout=20)


def test_files_written_as_one_appear_together_or_not_at_all(tmp_path, monkeypatch):
    """`explain -o` over an earlier output, on a full disk at its second file, left the
    new maps.npz beside the old explain.png; `nir` wrote one of its two files."""
    from deploy.atomic import DiskFullError, as_one

    a, b = tmp_path / "maps.npz", tmp_path / "explain.png"
    a.write_text("old a")
    b.write_text("old b")

    def full(f):
        raise DiskFullError(b, 0)

    with pytest.raises(DiskFullError):
        with as_one():
            write_file(a, lambda f: f.write(b"new a"))
            assert a.read_text() == "old a"  # not yet in place
            write_file(b, full)
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["explain.png", "maps.npz"]
    with as_one():
        write_file(a, lambda f: f.write(b"new a"))
        write_path(b, lambda p: p.write_text("new b"))
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
