"""One-line messages (issue 27, item 8): `stm verify --checkpoint` on a file torch cannot
load printed torch's multi-line text inviting weights_only=False; `stm verify --help`
showed a range "x<=None" for an unbounded number."""
from click.testing import CliRunner

from hybrid.cli import main


def test_stm_verify_bad_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    res = CliRunner().invoke(main, ["stm", "verify", "--checkpoint", str(bad)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: {bad}: not an STM checkpoint (torch cannot load it as tensors: "
        "UnpicklingError)"], res.output


def test_unbounded_numbers_show_no_range():
    res = CliRunner().invoke(main, ["stm", "verify", "--help"])
    assert res.exit_code == 0 and "None" not in res.output, res.output
    assert "[default: 1.0]" in res.output
