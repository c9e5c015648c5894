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


def _group_raising(exc_from):
    """A CLI group of the project's kind with one command ``go`` that raises ImportError
    from ``exc_from`` (what a C extension's import does when a signal interrupts it)."""
    import click

    from hybrid.cli import _Group

    @click.group(cls=_Group)
    def group():
        pass

    @group.command()
    def go():
        try:
            raise exc_from
        except BaseException as e:
            raise ImportError("initialization failed") from e

    return group


def test_an_error_raised_from_a_ctrl_c_is_an_interrupt():
    """Ctrl-C while matplotlib's ``_image`` was imported came as "ImportError:
    initialization failed" raised from the KeyboardInterrupt: a traceback and exit 1
    (measured: a SIGINT 2.5 s into `hybrid eval`)."""
    res = CliRunner().invoke(_group_raising(KeyboardInterrupt()), ["go"])
    assert res.exit_code == 130, res.output
    assert res.output.strip().splitlines() == ["interrupted"], res.output


def test_an_error_raised_from_sigterm_exits_143():
    from neuro.shutdown import Terminated

    res = CliRunner().invoke(_group_raising(Terminated()), ["go"])
    assert res.exit_code == 143 and "Traceback" not in res.output, res.output


def test_an_error_raised_from_another_exit_stays_an_error():
    res = CliRunner().invoke(_group_raising(SystemExit(3)), ["go"])
    assert isinstance(res.exception, ImportError), res.output
