"""The README and the docs pages stay true to the code: every `hybrid` command line they
show names a real command and real options, every repository path they name exists,
the README stays a front page (short, no link leaving the repository), and the Python
example of the getting-started page runs."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from hybrid.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples/README.md"]
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
PATH = re.compile(r"`((?:ann|neuro|deploy|hybrid|tests|benchmarks|examples|docs)/[\w/.{}*-]+)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def command_lines(text: str) -> list[str]:
    """The `hybrid ...` lines of the page's bash blocks, comments removed, continuations
    joined."""
    out = []
    for lang, body in FENCE.findall(text):
        if lang not in ("bash", "sh", ""):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("hybrid ") or " -m hybrid " in line:
                out.append(line[line.index("hybrid"):].replace("hybrid ", "", 1).strip())
    return out


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The click command the words name (groups followed), and the words after it."""
    cmd: click.Command = main
    while isinstance(cmd, click.Group) and words and words[0] in cmd.commands:
        cmd, words = cmd.commands[words[0]], words[1:]
    return cmd, words


def option_names(cmd: click.Command) -> set[str]:
    names = set()
    for p in cmd.get_params(click.Context(cmd)):
        names.update(getattr(p, "opts", []))
        names.update(getattr(p, "secondary_opts", []))
    return names


def test_some_pages_show_commands():
    assert len([c for p in PAGES for c in command_lines(p.read_text())]) > 40


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_hybrid_command_line_names_a_command_and_its_options(page):
    for line in command_lines(page.read_text()):
        cmd, rest = resolve(shlex.split(line))
        assert not isinstance(cmd, click.Group), f"{page.name}: `hybrid {line}`: no command"
        known = option_names(cmd)
        for word in rest:
            if word.startswith("-") and word not in ("-", "--"):
                opt = word.split("=", 1)[0]
                assert opt in known, f"{page.name}: `hybrid {line}`: {cmd.name} has no {opt}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_a_page_names_exists(page):
    text = page.read_text()
    for path in PATH.findall(text):
        path = path.split("::")[0].rstrip(".,:;")
        if any(c in path for c in "{*") or path.startswith("docs/_build"):
            continue  # a pattern, or what `make docs` builds (CI builds it after the tests)
        assert (ROOT / path).exists(), f"{page.name} names {path}, which does not exist"
    for target in LINK.findall(text):
        if "://" in target or target.startswith("#"):
            continue
        target = target.split("#")[0]
        assert (page.parent / target).resolve().exists(), f"{page.name}: link to {target}"


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 250
    assert "../" not in text, "the README links outside the repository"
    assert "make demo" in text and "make test" in text
    assert "not built yet" not in text


def test_getting_started_python_example_runs():
    text = (ROOT / "docs/getting-started.md").read_text()
    code = [body for lang, body in FENCE.findall(text) if lang == "python"]
    assert len(code) == 1
    scope: dict = {}
    exec(compile(code[0], "docs/getting-started.md", "exec"), scope)
    assert tuple(scope["logits"].shape) == (1, 8)
