"""Issue 24, case 10: a byte-order mark in any UCF list is read as in classInd.txt, and
`inspect` says what `predict` will say of a video shorter than one GOP."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hybrid.cli import main


def _ucf(root, bom: bool):
    mark = "\ufeff" if bom else ""
    root.mkdir()
    (root / "classInd.txt").write_text(f"{mark}1 Archery\n2 Basketball\n", encoding="utf-8")
    (root / "trainlist01.txt").write_text(
        f"{mark}Archery/v_Archery_g01_c01.avi 1\nBasketball/v_Basketball_g01_c01.avi 2\n",
        encoding="utf-8")
    (root / "testlist01.txt").write_text(
        f"{mark}Archery/v_Archery_g02_c01.avi\nBasketball/v_Basketball_g02_c01.avi\n",
        encoding="utf-8")
    return root


def test_a_bom_in_every_ucf_list_is_read_alike(tmp_path):
    from hybrid.data.sources import load_split
    from hybrid.data.splits import SplitError

    plain, marked = _ucf(tmp_path / "plain", False), _ucf(tmp_path / "bom", True)
    for split in ("train", "test"):
        assert load_split(marked, split) == load_split(plain, split)
    (marked / "testlist01.txt").write_bytes(b"Archery/\xff\xfe.avi\n")
    with pytest.raises(SplitError, match="testlist01.txt: not UTF-8"):
        load_split(marked, "test")


def _one_frame(path):
    """One MPEG-4 Part 2 frame (the reader's codec and GOP; too short to read)."""
    from hybrid.video.selfcheck import encode_moving_square

    path.write_bytes(encode_moving_square(frames=1))
    return path


def test_inspect_says_a_video_shorter_than_a_gop_is_refused(tmp_path):
    video = _one_frame(tmp_path / "one.m4v")
    res = CliRunner().invoke(main, ["inspect", str(video), "--size", "64x48", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["frames"] == 1 and info["reader_form"] is True
    assert info["reader_refuses"] == "1 frames, fewer than one GOP (12)"
    res = CliRunner().invoke(main, ["inspect", str(video), "--size", "64x48"])
    assert "reads it as it is" not in res.output
    assert "reader: refuses it: 1 frames, fewer than one GOP (12)" in res.output
    res = CliRunner().invoke(main, ["extract", str(video), "-o", str(tmp_path / "x.h5"),
                                    "--size", "64x48"])
    assert res.exit_code == 1 and "1 frames, fewer than one GOP (12)" in res.output
