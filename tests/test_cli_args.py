"""The command-line argument helpers shared by the subcommands (lowrank_theory._validation)."""

import argparse

import pytest
from lowrank_theory.cli._args import add_names_option, int_at_least


def _parser():
    parser = argparse.ArgumentParser(prog="p")
    add_names_option(parser, "--only", ["a", "b", "c"], help="pick")
    return parser


@pytest.mark.parametrize("argv, names", [
    ([], None),
    (["--only", "a"], ["a"]),
    (["--only", "a", "b"], ["a", "b"]),
    (["--only", "a", "--only", "b"], ["a", "b"]),
    (["--only", "a,b"], ["a", "b"]),
    (["--only", "c,a", "b", "--only", "a"], ["c", "a", "b"]),
    (["--only", " b , c "], ["b", "c"]),
])
def test_names_option_accepts_three_spellings(argv, names):
    """Space-separated, repeated and comma-separated names all parse to one ordered list
    without duplicates; no option gives None."""
    assert _parser().parse_args(argv).only == names


@pytest.mark.parametrize("argv", [["--only", "d"], ["--only", "a,d"], ["--only", "a,"], ["--only"]])
def test_names_option_rejects_unknown_names(argv, capsys):
    """An unknown (or empty) name is a usage error (exit 2) naming the option and the valid names."""
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--only" in err
    if len(argv) > 1:
        assert "a, b, c" in err


@pytest.mark.parametrize("text, minimum, expected", [("0", 0, 0), ("7", 1, 7), ("12", 12, 12)])
def test_int_at_least_accepts(text, minimum, expected):
    """Integers at or above the minimum parse to int."""
    assert int_at_least(minimum, "--n")(text) == expected


@pytest.mark.parametrize("text, minimum, message", [
    ("-1", 0, "--n must be a non-negative integer, got -1"),
    ("0", 1, "--n must be an integer >= 1, got 0"),
    ("1.5", 1, "--n must be an integer >= 1, got '1.5'"),
    ("x", 0, "--n must be a non-negative integer, got 'x'"),
])
def test_int_at_least_errors_name_the_option(text, minimum, message):
    """Errors name the option and say what was expected."""
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("(", r"\(")):
        int_at_least(minimum, "--n")(text)
