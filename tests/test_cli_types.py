"""The CLI's shared parameter types, and that every command's size option uses one."""
import click
import pytest

from hybrid.cli import main
from hybrid.cli.types import VIDEO_SIZE, Shard, Size


@pytest.mark.parametrize("text,kw,want", [
    ("340x256", {}, (340, 256)), ("340X256", {}, (340, 256)), ("56", {}, (56, 56)),
    ("340x256", {"order": "hw"}, (256, 340)), ("64", {"square": True}, 64),
    ("64x64", {"square": True}, 64), (" 16x32 ", {"even": True, "minimum": 16}, (16, 32)),
])
def test_size_parses_width_first(text, kw, want):
    assert Size(**kw).convert(text, None, None) == want


@pytest.mark.parametrize("text,t,msg", [
    ("340", VIDEO_SIZE, None), ("65x48", VIDEO_SIZE, "even"), ("8x8", VIDEO_SIZE, ">= 16"),
    ("12x", Size(), "WIDTHxHEIGHT"), ("axb", Size(), "WIDTHxHEIGHT"),
    ("64x48", Size(square=True), "square"), ("1x2x3", Size(), "WIDTHxHEIGHT"),
])
def test_size_errors_say_what_is_wrong(text, t, msg):
    if msg is None:
        assert t.convert(text, None, None) == (340, 340)
        return
    with pytest.raises(click.BadParameter, match=msg):
        t.convert(text, None, None)


@pytest.mark.parametrize("text,want", [("1/1", (1, 1)), ("3/8", (3, 8))])
def test_shard(text, want):
    assert Shard().convert(text, None, None) == want


@pytest.mark.parametrize("text", ["0/2", "3/2", "1-2", "a/b", "2"])
def test_shard_errors(text):
    with pytest.raises(click.BadParameter):
        Shard().convert(text, None, None)


def _commands(group, prefix=""):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def test_every_size_option_uses_the_size_type():
    seen = []
    for name, cmd in _commands(main):
        for p in cmd.params:
            if p.name in ("size", "stm_size", "video_size"):
                assert isinstance(p.type, Size), f"hybrid {name} --{p.name}: {p.type!r}"
                seen.append(name)
    assert {"synth", "prepare", "extract", "inspect", "train", "eval", "predict", "summary",
            "stm verify"} <= set(seen)


@pytest.mark.parametrize("cmd", ["eval", "profile"])
def test_views_help_says_which_segments_are_allowed(cmd):
    from click.testing import CliRunner

    res = CliRunner().invoke(main, [cmd, "--help"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0
    assert "multiple of the segments the model was trained with" in text
    assert "3, 6, 9" in text and "5 (four corners and centre)" in text
