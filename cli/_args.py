"""Argument types and options shared by every subcommand, so they read their arguments one way."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

__all__ = ["int_at_least", "add_names_option", "add_seed_options", "selected_seeds"]


def int_at_least(minimum: int, option: str) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= minimum`` whose error names ``option``.

    Examples
    --------
    >>> int_at_least(1, "--jobs")("3")
    3
    """
    what = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{option} must be {what}, got {value}")
        return value

    return parse


def add_names_option(
    parser: argparse.ArgumentParser, option: str, choices: Sequence[str], *, help: str
) -> None:
    """Add an option that takes names from ``choices``, written any of three ways.

    ``--only a b``, ``--only a --only b`` and ``--only a,b`` all give ``["a", "b"]``
    (duplicates dropped, first occurrence kept); an unknown name is a usage error (exit 2)
    that names the option and lists the valid names. The default is ``None`` (no names given).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    option : str
        The flag, e.g. ``"--only"``.
    choices : sequence of str
        Valid names.
    help : str
        Help text; the valid names are appended to it.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_names_option(p, "--only", ["a", "b", "c"], help="run only these")
    >>> p.parse_args(["--only", "a", "c", "--only", "b,a"]).only
    ['a', 'c', 'b']
    """
    valid = tuple(choices)

    class _Names(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            names = list(getattr(namespace, self.dest) or [])
            for value in values:
                for name in (part.strip() for part in value.split(",")):
                    if name not in valid:
                        parser.error(
                            f"argument {option}: invalid name {name!r} (choose from "
                            f"{', '.join(valid)})"
                        )
                    if name not in names:
                        names.append(name)
            setattr(namespace, self.dest, names)

    parser.add_argument(
        option, nargs="+", action=_Names, default=None, metavar="NAME",
        help=f"{help} (repeatable, or comma-separated); one of: {', '.join(valid)}",
    )


def add_seed_options(parser: argparse.ArgumentParser, *, default: str) -> None:
    """Add ``--seeds N`` (seeds 0..N-1) and ``--seed S`` (the one seed S), mutually exclusive.

    Every subcommand that runs seeded work spells its seeds this way; read the choice back
    with :func:`selected_seeds`.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    default : str
        What runs when neither is given, for the help text.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_seed_options(p, default="the sweep's seeds")
    >>> selected_seeds(p.parse_args(["--seeds", "3"])), selected_seeds(p.parse_args(["--seed", "7"]))
    ((0, 1, 2), (7,))
    >>> selected_seeds(p.parse_args([])) is None
    True
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seeds", type=int_at_least(1, "--seeds"), metavar="N",
                       help=f"run seeds 0..N-1 (default: {default})")
    group.add_argument("--seed", type=int_at_least(0, "--seed"), metavar="S",
                       help="run the one seed S")


def selected_seeds(args: argparse.Namespace) -> tuple[int, ...] | None:
    """The seeds chosen with :func:`add_seed_options`' options, or None if neither was given."""
    if getattr(args, "seed", None) is not None:
        return (args.seed,)
    if getattr(args, "seeds", None) is not None:
        return tuple(range(args.seeds))
    return None
