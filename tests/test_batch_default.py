"""`hybrid train` without --batch-size gives a small training set enough optimiser steps
an epoch (issue 28: 88 videos at 8 a step made 11 steps an epoch, 330 in 30 epochs, and
the fast/slow sideways pair stayed at chance though the MV STM's output separates it);
a large set keeps 8, a given size and a resumed run's size win."""
import pytest
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.training import checkpoint
from hybrid.training.runs import DEFAULT_BATCH, MIN_BATCH, MIN_STEPS, default_batch_size


@pytest.mark.parametrize("clips, processes, size", [
    (88, 1, 2),  # issue 28's set: 44 steps an epoch
    (8, 1, MIN_BATCH), (1, 1, MIN_BATCH),  # never below MIN_BATCH
    (128, 1, 4), (255, 1, 7),  # the largest size still giving MIN_STEPS steps
    (256, 1, DEFAULT_BATCH), (9537, 1, DEFAULT_BATCH),  # a large set: unchanged
    (512, 4, 4),  # per process under torchrun: 128 clips each
])
def test_default_batch_size_gives_a_small_set_its_steps(clips, processes, size):
    got, note = default_batch_size(clips, processes)
    assert got == size
    assert (note is None) == (size == DEFAULT_BATCH)
    if size not in (DEFAULT_BATCH, MIN_BATCH):
        assert clips // processes // size >= MIN_STEPS
    if note:
        assert note.startswith(f"batch size {size}: {clips} training videos") and \
            "--batch-size" in note


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from hybrid.video.synth import SynthConfig, make_dataset

    out = tmp_path_factory.mktemp("small")
    make_dataset(out, classes=2, per_class=4, seed=5, cfg=SynthConfig(size=(64, 48), frames=12))
    return out


def _train(data, run, *extra):
    return CliRunner().invoke(main, ["train", str(data), "-o", str(run), "--epochs", "1",
                                     "--segments", "1", "--size", "32", "--workers", "0",
                                     *extra])


def test_train_on_a_small_folder_defaults_to_small_batches_and_says_so(small, tmp_path):
    r = _train(small, tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert "batch size 2: 6 training videos make 3 steps an epoch" in r.stderr
    assert checkpoint.load(tmp_path / "run" / "checkpoint.pt")["train_config"][
        "batch_size"] == 2
    # given, --batch-size wins and nothing is said
    r = _train(small, tmp_path / "run2", "--batch-size", "5")
    assert r.exit_code == 0, r.output
    assert "batch size" not in r.stderr
    assert checkpoint.load(tmp_path / "run2" / "checkpoint.pt")["train_config"][
        "batch_size"] == 5
    # resumed, the run keeps its own size (not the small-set default) and says nothing
    r = CliRunner().invoke(main, ["train", str(small), "-o", str(tmp_path / "run2"),
                                  "--resume", "--epochs", "2", "--workers", "0"])
    assert r.exit_code == 0, r.output
    assert "batch size" not in r.stderr
    ck = checkpoint.load(tmp_path / "run2" / "checkpoint.pt")
    assert ck["epoch"] == 2 and ck["train_config"]["batch_size"] == 5
