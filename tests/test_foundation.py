"""The foundation: compat layer, Lava LIF voltages, slayer without torchvision, the
dependency rule, `hybrid doctor` and `hybrid --help`."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["hybrid", "neuro", "ann", "deploy"]


def test_compat_active_and_lava_imports():
    import neuro
    from neuro import compat

    st = compat.status()
    assert st["var_model_hook"] == (sys.version_info >= (3, 11))
    import lava.magma.compiler.var_model as vm

    a, b = vm.CoreEncoder(), vm.CoreEncoder()
    assert a.x is not b.x, "default_factory must give each instance its own ByteEncoder"
    assert neuro.compat is compat


def test_compat_is_idempotent_and_leaves_site_packages_alone():
    from neuro import compat

    before = list(sys.meta_path)
    compat.apply()
    compat.apply()
    assert len(sys.meta_path) == len(before)
    import lava.magma.compiler.var_model as vm

    src = Path(vm.__file__).read_text()
    if sys.version_info >= (3, 11):
        assert "x: ByteEncoder = ByteEncoder()" in src, "installed file must stay unedited"


def test_slayer_imports_without_torchvision():
    import neuro  # noqa: F401
    from neuro import compat

    from lava.lib.dl import netx, slayer  # noqa: F401

    if compat.status()["torchvision"]:
        pytest.skip("torchvision present: no placeholder needed")
    with pytest.raises(ImportError, match="torchvision"):
        slayer.obd.models  # noqa: B018


def test_lava_lif_reference_voltages_known_values():
    from neuro.selfcheck import lif_reference

    # hand-computed: bias 100<<6 = 6400 per step, no decay, threshold 200<<6 = 12800
    v = lif_reference(4, [100], 6, vth=200, du=4095, dv=0)[:, 0]
    assert v.tolist() == [6400, 12800, 0, 6400]


@pytest.mark.slow
def test_lava_lif_fixed_pt_matches_reference():
    from neuro.selfcheck import check_lava_lif

    ok, detail = check_lava_lif(steps=10)
    assert ok, detail


def test_slayer_block_forward_backward():
    from neuro.selfcheck import check_slayer_block

    ok, detail = check_slayer_block()
    assert ok, detail


def test_no_test_imports_lava_tests_package():
    for f in (ROOT / "tests").rglob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            assert not any(n == "tests" or n.startswith("tests.") for n in names), (
                f"{f.name} imports the `tests` package, which lava shadows")


def _imports(pkg: str) -> set[tuple[str, str]]:
    found = set()
    for f in (ROOT / pkg).rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                found |= {(str(f.relative_to(ROOT)), a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(f.relative_to(ROOT)), node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("pkg,forbidden", [
    ("ann", {"neuro", "deploy", "hybrid", "lava"}),
    ("neuro", {"ann", "deploy", "hybrid"}),
    ("deploy", {"hybrid"}),
])
def test_dependency_rule(pkg, forbidden):
    bad = sorted((f, m) for f, m in _imports(pkg) if m in forbidden)
    assert not bad, f"{pkg} breaks the dependency rule: {bad}"


def test_help_is_light_and_lists_commands():
    code = ("import sys, hybrid.cli; heavy = [m for m in ('torch', 'lava', 'av', 'h5py', "
            "'matplotlib') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"hybrid.cli imports heavy modules: {out.stdout}"
    from hybrid.cli import main

    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    for cmd in ["doctor", "demo"]:
        assert cmd in res.output


@pytest.mark.slow
def test_doctor_passes_and_json():
    from hybrid.cli import main

    res = CliRunner().invoke(main, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["ok"] and {c["name"] for c in rep["checks"]} >= {"compat", "lava_lif_fixed_pt"}
    assert rep["versions"]["lava-nc"] == "0.10.0"


def test_doctor_failing_check_exits_nonzero(monkeypatch):
    from hybrid import doctor as doc
    from hybrid.cli import main

    monkeypatch.setattr(doc, "CHECKS", [
        ("fine", "neuro.selfcheck:check_compat", "n/a"),
        ("broken", "math:nonexistent_function", "install the thing"),
    ])
    res = CliRunner().invoke(main, ["doctor"])
    assert res.exit_code == 1
    assert "FAIL" in res.output and "broken" in res.output and "install the thing" in res.output
    assert "1/2 checks passed" in res.output


def test_pyav_selfcheck_block_motion():
    from hybrid.video.selfcheck import decode_block_motion, encode_moving_square

    types, motions = decode_block_motion(encode_moving_square(12, (64, 48), step=2))
    assert types == ["I"] + ["P"] * 11
    moving = np.concatenate([m[m[:, 2] != 0] for m in motions[1:]])
    assert (moving[:, 2] == 2).mean() > 0.5, "most moving blocks carry the square's +2 px"
