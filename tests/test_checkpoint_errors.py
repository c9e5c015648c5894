"""Files given as checkpoints that are not (usable) training checkpoints: a one-line error
naming the file and what it is, for every command that reads one."""
import logging
import os

import pytest
import torch
from click.testing import CliRunner

from hybrid import checkpoint
from hybrid.cli import main


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
    with caplog.at_level(logging.DEBUG, logger="hybrid.checkpoint"):  # `hybrid -vv`
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
