"""Argument types and options shared by every subcommand, so they read their arguments one way."""

from __future__ import annotations

import argparse
import errno
from collections.abc import Callable, Sequence
from pathlib import Path

from lowrank_theory.simulations.configs import MAX_SEED

__all__ = ["int_at_least", "add_names_option", "add_seed_options", "selected_seeds",
           "out_folder", "output_error", "scheduler_address", "add_force_option"]

#: Longest argument text an error message quotes in full.
_SHOWN = 60


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def int_at_least(minimum: int, option: str, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= minimum`` (and ``<= maximum``) naming ``option``.

    Examples
    --------
    >>> int_at_least(1, "--jobs")("3")
    3
    >>> int_at_least(0, "--seed", 2**63 - 1)(str(2**64))
    Traceback (most recent call last):
    argparse.ArgumentTypeError: --seed must be an integer in 0..9223372036854775807, got 18446744073709551616
    """
    if maximum is not None:
        what = f"an integer in {minimum}..{maximum}"
    else:
        what = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            # int() of a long digit string is quadratic, and Python refuses past 4300 digits.
            value = int(text) if len(text) <= 100 else None
        except ValueError:
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"{option} must be {what}, got {_shown(text)}")
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{option} must be {what}, got {value}")
        return value

    return parse


def out_folder(option: str = "--out") -> Callable[[str], Path]:
    """An argparse ``type`` for an output folder: any path but the empty string.

    ``--out ''`` would mean the current folder by accident (``Path('')`` is ``.``); a user who
    means it writes ``--out .``.

    Examples
    --------
    >>> out_folder()("results/x")
    PosixPath('results/x')
    """
    def parse(text: str) -> Path:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{option} must name a folder, got {text!r} (write "
                                             f"{option} . for the current folder)")
        if "\0" in text:
            raise argparse.ArgumentTypeError(f"{option} must be a path, got a NUL character")
        return Path(text)

    return parse


def scheduler_address(text: str) -> str:
    """An argparse ``type`` for ``--scheduler``: a dask address, checked for its form only.

    Examples
    --------
    >>> scheduler_address("10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    """
    from lowrank_theory.simulations.executors import check_scheduler_address

    try:
        return check_scheduler_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--scheduler: {exc}") from None


def add_force_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--force``: run a sweep past the size and memory limits it would be refused at."""
    parser.add_argument("--force", action="store_true",
                        help="run a sweep even past the limits on its number of runs and its "
                             "estimated memory (it is refused by default, before anything is "
                             "written)")


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
    from lowrank_theory.simulations.budget import HARD_MAX_RUNS

    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seeds", type=int_at_least(1, "--seeds", HARD_MAX_RUNS), metavar="N",
                       help=f"run seeds 0..N-1 (default: {default})")
    group.add_argument("--seed", type=int_at_least(0, "--seed", MAX_SEED), metavar="S",
                       help="run the one seed S (at most 2**63-1)")


def selected_seeds(args: argparse.Namespace) -> tuple[int, ...] | None:
    """The seeds chosen with :func:`add_seed_options`' options, or None if neither was given."""
    if getattr(args, "seed", None) is not None:
        return (args.seed,)
    if getattr(args, "seeds", None) is not None:
        return tuple(range(args.seeds))
    return None


def output_error(exc: OSError) -> str:
    """The message for an error met while writing the output: a full disk, say.

    Examples
    --------
    >>> output_error(OSError(errno.ENOSPC, "No space left on device", "out/phase.csv"))
    'no space left while writing out/phase.csv; finished units are kept; free space and rerun'
    """
    where = exc.filename if exc.filename is not None else "the output"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left while writing {where}; finished units are kept; free space "
                "and rerun")
    return f"{exc.strerror or exc}: {where}"
