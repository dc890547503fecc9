"""docs/guide.md runs as written: every code block, in order, in an empty folder.

``python`` blocks are doctests sharing one namespace (their output is checked); a ``toml``
block whose first line is ``# NAME`` is written to the file NAME; in a ``console`` block each
``$ lowrank-theory ...`` line is run through the CLI's ``main`` (stdout and stderr together, as
a terminal shows them) and compared with the lines under it (if any), ``...`` matching any
text. A shown output that starts with ``error:`` must come with exit status 2, any other with 0.
"""

import contextlib
import doctest
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from lowrank_theory.cli import main

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide.md"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, text and first line number in the file."""

    lang: str
    text: str
    line: int


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a markdown text, in order."""
    return [Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2)
            for m in _FENCE.finditer(text)]


def console_commands(text: str) -> list[tuple[str, str]]:
    """``(command, expected output)`` pairs of a console block (``$ `` starts a command)."""
    pairs: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        elif pairs:
            pairs[-1][1].append(line)
        else:
            raise ValueError(f"output before any command: {line!r}")
    return [(command, "\n".join(lines).strip("\n") + "\n") for command, lines in pairs]


def run_command(command: str) -> tuple[int, str]:
    """Run ``lowrank-theory ARGS`` in this process; return its exit status and its output."""
    program, *argv = shlex.split(command)
    if program != "lowrank-theory":
        raise ValueError(f"the guide may only show lowrank-theory commands, got {command!r}")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code
    return int(status or 0), buffer.getvalue()


def output_matches(want: str, got: str) -> bool:
    """Whether ``got`` matches ``want`` (``...`` any text, whitespace runs equal)."""
    return doctest.OutputChecker().check_output(want, got, FLAGS)


def run_guide(path: Path) -> None:
    """Run every block of ``path`` in order in the current folder; fail at the first mismatch."""
    globs: dict = {"__name__": "guide"}
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=FLAGS)
    for block in blocks(path.read_text("utf-8")):
        where = f"{path.name}, block at line {block.line}"
        if block.lang == "python":
            test = parser.get_doctest(block.text, globs, where, str(path), block.line)
            out = io.StringIO()
            result = runner.run(test, out=out.write, clear_globs=False)
            assert result.failed == 0, f"{where}:\n{out.getvalue()}"
            globs.update(test.globs)  # a DocTest runs on a copy of the namespace
        elif block.lang == "toml":
            first = block.text.splitlines()[0]
            assert first.startswith("# "), f"{where}: a toml block starts with '# FILE NAME'"
            Path(first[2:].strip()).write_text(block.text)
        elif block.lang == "console":
            for command, want in console_commands(block.text):
                status, got = run_command(command)
                expected = 2 if want.startswith("error:") else 0
                assert status == expected, f"{where}: {command} exited {status}:\n{got}"
                assert not want.strip() or output_matches(want, got), (
                    f"{where}: {command}\n--- shown:\n{want}--- printed:\n{got}")
        else:
            raise AssertionError(f"{where}: no rule to run a {block.lang!r} block")


def test_the_guide_runs_as_written(tmp_path, monkeypatch):
    """Every recipe of docs/guide.md, run in an empty folder, prints what the guide shows."""
    monkeypatch.chdir(tmp_path)
    with threadpool_limits(1):
        run_guide(GUIDE)


def test_guide_has_every_recipe():
    titles = re.findall(r"^## (.*)$", GUIDE.read_text(), re.M)
    for topic in ("Your own task family", "against the number of samples", "How much rank",
                  "Checking one claim", "Your own sweep"):
        assert any(topic in title for title in titles), topic
    kinds = {b.lang for b in blocks(GUIDE.read_text())}
    assert kinds == {"python", "toml", "console"}


# --------------------------------------------------------------------------- negative controls
def test_a_wrong_doctest_fails(tmp_path, monkeypatch):
    """The runner fails on a Python block whose output differs from the one shown."""
    monkeypatch.chdir(tmp_path)
    page = tmp_path / "page.md"
    page.write_text("```python\n>>> 1 + 1\n3\n\n```\n")
    with pytest.raises(AssertionError, match="block at line 2"):
        run_guide(page)


def test_a_wrong_console_output_or_status_fails(tmp_path, monkeypatch):
    """The runner fails on a console output that differs from the one shown, and on a command
    whose exit status is not the one its output implies."""
    monkeypatch.chdir(tmp_path)
    page = tmp_path / "page.md"
    page.write_text("```console\n$ lowrank-theory check --only sr-rank\n...seed 0: 0/1 ...\n```\n")
    with pytest.raises(AssertionError, match="--- shown"):
        run_guide(page)
    page.write_text("```console\n$ lowrank-theory reproduce --jobs 0\n...\n```\n")
    with pytest.raises(AssertionError, match="exited 2"):
        run_guide(page)


def test_console_blocks_split_into_commands():
    assert console_commands("$ a b\nout 1\n\nout 2\n$ c\n") == [("a b", "out 1\n\nout 2\n"),
                                                                ("c", "\n")]
    assert output_matches("x ... z\n", "x y\n  z\n") and not output_matches("x\n", "y\n")
