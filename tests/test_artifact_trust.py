"""Issue 24: artifacts and data you can trust. Each case of the issue is a test here:
``deploy --force`` replaces only an earlier artifact; every file the runtime opens is one
the manifest lists and verifies, read once; nothing read outside its folder."""
from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from deploy.artifact import folder as A
from hybrid.cli import main


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ---- 1. deploy --force replaces only an earlier artifact ------------------------------


def test_deploy_force_replaces_only_an_earlier_artifact(trained, deployed, tmp_path,
                                                       monkeypatch):
    data, ckpt = trained
    run = tmp_path / "run"
    shutil.copytree(ckpt.parent, run)
    ds = tmp_path / "ds"
    shutil.copytree(data, ds)
    extra = tmp_path / "extra"  # an artifact with a file of the user's beside it
    shutil.copytree(deployed.path, extra)
    (extra / "notes.txt").write_text("mine")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "keep.txt").write_text("mine")
    for out, why in ((run, "not a `hybrid deploy` artifact"),
                     (ds, "not a `hybrid deploy` artifact"),
                     (extra, "notes.txt")):
        before = _tree(out)
        res = CliRunner().invoke(main, ["deploy", str(run / "checkpoint.pt"), "-o", str(out),
                                        "--force"])
        assert res.exit_code == 1 and why in res.output, res.output
        assert str(out) in res.output and "Traceback" not in res.output
        assert _tree(out) == before, f"{out} was changed"
    monkeypatch.chdir(cwd)
    res = CliRunner().invoke(main, ["deploy", str(run / "checkpoint.pt"), "-o", ".", "--force"])
    assert res.exit_code == 1 and "not a `hybrid deploy` artifact" in res.output, res.output
    assert _tree(cwd) == {"keep.txt": b"mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "ds", "extra", "run"]
    # an earlier artifact is replaced, also one given as "."
    art = tmp_path / "art"
    shutil.copytree(deployed.path, art)
    res = CliRunner().invoke(main, ["deploy", str(run / "checkpoint.pt"), "-o", str(art),
                                    "--force"])
    assert res.exit_code == 0, res.output
    monkeypatch.chdir(art)
    res = CliRunner().invoke(main, ["deploy", str(run / "checkpoint.pt"), "-o", ".", "--force"])
    assert res.exit_code == 0, res.output
    assert A.load_artifact(art).classes == deployed.classes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
