"""docs/guide.md runs as written: every code block, in order, in an empty folder.

``python`` blocks are doctests sharing one namespace (their output is checked); a ``toml``
block whose first line is ``# NAME`` is written to the file NAME; in a ``console`` block each
``$ ...`` line is run in this process (:func:`run_command`; stdout and stderr together, as a
terminal shows them) and compared with the lines under it (if any), ``...`` matching any
text; the GPU recipe runs at a tiny size (:data:`TINY`). A shown output that starts with ``error:`` must come with exit status 2, any other with 0.
"""

import contextlib
import doctest
import importlib
import io
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from lowrank_theory.cli import main
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "guide.md"
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


#: How the GPU recipe runs on a test machine: tiny step budgets, one seed, one process, and
#: the CPU where torch sees no GPU. The benchmark's measurements take minutes, so its options
#: are checked (``--help`` after them), not its timings.
TINY = (("--size paper", "--size paper --steps-scale 0.0002 --seeds 1 --jobs 1 --threads 1"),)
CPU_FOR_CUDA = (("--device cuda", "--device cpu"), ("--devices cpu cuda", "--devices cpu"))


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def tiny(command: str) -> str:
    """``command`` with the substitutions that run it here at a tiny size."""
    for old, new in TINY + (() if _cuda() else CPU_FOR_CUDA):
        command = command.replace(old, new)
    return command


def run_command(command: str) -> tuple[int, str]:
    """Run a shown command in this process; return its exit status and its output.

    ``lowrank-theory ARGS`` goes through the CLI's ``main``; ``python -m MODULE ARGS`` through
    ``MODULE.main(ARGS)``; ``python SCRIPT ARGS`` (a path from the repository root) runs with
    ``--help`` appended.
    """
    program, *argv = shlex.split(tiny(command))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            if program == "lowrank-theory":
                status = main(argv)
            elif program == "python" and argv[:1] == ["-m"]:
                status = importlib.import_module(argv[1]).main(argv[2:])
            elif program == "python":
                script = REPO / argv[0]
                with _argv([str(script), *argv[1:], "--help"]):
                    runpy.run_path(str(script), run_name="__main__")
                status = 0
            else:
                raise ValueError(f"the guide may show lowrank-theory and python commands only, "
                                 f"got {command!r}")
        except SystemExit as exc:  # argparse's usage errors and --help
            status = exc.code
    return int(status or 0), buffer.getvalue()


@contextlib.contextmanager
def _argv(argv: list[str]):
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


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
                  "Checking one claim", "Your own sweep", "Neural experiments on a GPU"):
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
