"""Files given as checkpoints that are not (usable) training checkpoints: a one-line error
naming the file and what it is, for every command that reads one."""
import logging
import os

import pytest
import torch
from click.testing import CliRunner

from hybrid.cli import main
from hybrid.training import checkpoint


def _commands(ck, tmp_path):
    return {"predict": ["predict", ck, tmp_path / "v.avi"],
            "eval": ["eval", ck, tmp_path],
            "deploy": ["deploy", ck, "-o", tmp_path / "art"],
            "explain": ["explain", ck, tmp_path / "v.avi", "-o", tmp_path / "ex"],
            "train --init": ["train", tmp_path, "-o", tmp_path / "run", "--init", ck]}


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _error_lines(res) -> list[str]:
    return [line for line in res.output.splitlines() if line.strip()]


class Unsafe:  # an object weights_only loading refuses
    pass


@pytest.mark.parametrize("kind", ["random", "text", "other torch objects"])
def test_a_file_that_is_no_checkpoint_gives_one_line(tmp_path, kind, caplog):
    ck = tmp_path / "ck.pt"
    if kind == "random":
        ck.write_bytes(os.urandom(3000))
    elif kind == "text":
        ck.write_text("hello, I am a README\n")
    else:
        torch.save({"x": Unsafe()}, ck)
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.load(ck)
    assert str(e.value).startswith(f"not a hybrid checkpoint: {ck} (")
    assert isinstance(e.value.__cause__, Exception)  # torch's error chained
    for name, args in _commands(ck, tmp_path).items():
        res = _run(*args)
        lines = _error_lines(res)
        assert res.exit_code == 1 and len(lines) == 1, (name, res.output)
        assert lines[0].startswith(f"Error: not a hybrid checkpoint: {ck}"), (name, lines)
        assert "Weights only" not in res.output, name
    with caplog.at_level(logging.DEBUG, logger="hybrid.training.checkpoint"):  # `hybrid -vv`
        res = _run("-vv", "predict", ck, tmp_path / "v.avi")
    assert res.exit_code == 1
    assert f"torch.load({ck}) failed" in caplog.text and "Traceback" in caplog.text


def test_a_truncated_torch_file_says_so(tmp_path):
    ck = tmp_path / "ck.pt"
    torch.save({"format": checkpoint.FORMAT, "w": torch.ones(1000)}, ck)
    ck.write_bytes(ck.read_bytes()[:2000])
    res = _run("predict", ck, tmp_path / "v.avi")
    lines = _error_lines(res)
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert f"{ck}: truncated or damaged checkpoint (2,000 bytes" in lines[0]


class _Clips(torch.utils.data.Dataset):
    """Random clips as a loader hands them over (uint8 codes; no labels): enough for one
    pretraining epoch of a tiny model."""

    def __init__(self, n: int, S: int = 2, size: int = 24):
        g = torch.Generator().manual_seed(n)
        self.items = [{"iframe": torch.randint(0, 256, (S, 3, size, size), generator=g,
                                               dtype=torch.uint8),
                       "mv": torch.randint(120, 136, (S, 11, 2, size, size), generator=g,
                                           dtype=torch.uint8),
                       "residual": torch.randint(120, 136, (S, 11, 3, size, size),
                                                 generator=g, dtype=torch.uint8),
                       "box": torch.tensor([size, size, 0, size])} for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_a_pretraining_checkpoint_says_to_fine_tune_first(tmp_path):
    from hybrid.model import HybridConfig
    from hybrid.pretraining.pretrain import PretrainConfig, pretrain
    from hybrid.training.train import TrainConfig

    pretrain((_Clips(4), _Clips(2)), tmp_path / "pre", HybridConfig(num_classes=1, segments=2,
                                                                   size=(24, 24)),
             PretrainConfig(levels=((2, 2),), hidden=8),
             TrainConfig(epochs=1, batch_size=2, warmup_epochs=0))
    ck = tmp_path / "pre" / "checkpoint.pt"
    assert checkpoint.load(ck)["kind"] == "pretrain"
    for name, args in _commands(ck, tmp_path).items():
        if name == "train --init":
            continue  # that is what it is for (tests/test_pretrain.py)
        res = _run(*args)
        lines = _error_lines(res)
        assert res.exit_code == 1 and len(lines) == 1, (name, res.output)
        assert f"{ck}: a `hybrid pretrain` checkpoint" in lines[0], (name, lines)
        assert "no classifier" in lines[0] and f"hybrid train DATA -o RUN --init {ck}" in lines[0]
        assert "does not fit" not in lines[0]


def test_deploy_onto_an_existing_folder_names_force(tmp_path):
    out = tmp_path / "art"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    res = _run("deploy", tmp_path / "any.pt", "-o", out)
    lines = _error_lines(res)
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert f"{out} exists: pass --force to replace it" in lines[0]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # --force replaces only an earlier artifact (issue 24): this folder is none, the
    # checkpoint is not even read, and nothing in the folder is touched
    res = _run("deploy", tmp_path / "any.pt", "-o", out, "--force")
    assert res.exit_code == 1 and "--force replaces only an earlier artifact" in res.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def _training_checkpoint(path, **cfg):
    from hybrid.model import HybridConfig, HybridModel

    cfg = HybridConfig(num_classes=2, segments=1, size=(32, 32), stm={"widths": (4, 4, 4)},
                       **cfg)
    checkpoint.save(path, model_config=cfg.to_dict(), classes=["a", "b"], epoch=1,
                    model=HybridModel(cfg).state_dict())
    return path


@pytest.mark.parametrize("given, named", [
    (["--variant", "base"], "--variant base (the checkpoint's: tiny)"),
    (["--size", "48"], "--size 48 (the checkpoint's: 32)"),
    (["--segments", "3"], "--segments 3 (the checkpoint's: 1)"),
    (["--modalities", "i"], "--modalities i (the checkpoint's: i,mv,r)"),
    (["--no-mixer"], "--no-mixer (the checkpoint has not)"),
    (["--temporal", "lstm", "--variant", "large"], "--variant large (the checkpoint's: tiny); "
                                                   "--temporal lstm (the checkpoint's: stm)"),
])
def test_init_with_a_different_model_option_is_refused(tmp_path, given, named):
    ck = _training_checkpoint(tmp_path / "ck.pt")
    data = tmp_path / "data"
    data.mkdir()
    res = _run("train", data, "-o", tmp_path / "run", "--init", ck, *given)
    assert res.exit_code == 2 and named in res.output, res.output
    assert f"--init {ck}" in res.output and not (tmp_path / "run").exists()


def test_init_with_the_checkpoints_own_options_goes_on(tmp_path):
    ck = _training_checkpoint(tmp_path / "ck.pt", dense={"mixer": False})
    data = tmp_path / "data"
    data.mkdir()  # empty: the run stops at the data, past the options
    res = _run("train", data, "-o", tmp_path / "run", "--init", ck, "--variant", "tiny",
               "--size", "32x32", "--modalities", "mv,i,r", "--no-mixer", "--quant", "qat")
    assert res.exit_code == 1 and "--init" not in res.output, res.output
    assert f"{data}: no class folders" in res.output


def test_a_checkpoint_that_does_not_fit_says_why(tmp_path):
    from hybrid.model import HybridConfig, HybridModel

    ck = _training_checkpoint(tmp_path / "ck.pt")
    state = checkpoint.load(ck)
    other = HybridConfig(num_classes=2, segments=1, size=(32, 32), stm={"widths": (4, 4, 6)})
    state["model"] = HybridModel(other).state_dict()  # weights of another STM width
    state["model"].pop("dense.head.bias")
    torch.save(state, ck)
    res = _run("predict", ck, tmp_path / "v.avi")
    lines = _error_lines(res)
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert "does not fit this toolkit's model" in lines[0]
    assert "Missing key(s) in state_dict: \"dense.head.bias\"" in lines[0], lines[0]
