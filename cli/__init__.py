"""Command line: ``lowrank-theory {check,reproduce,neural,describe}`` (also ``python -m lowrank_theory``).

The command line sits above the library and its applications: it imports
:mod:`lowrank_theory` (the mathematics), :mod:`lowrank_theory.simulations` (experiments and the
runner) and :mod:`lowrank_theory.figures` (plots), and none of them imports it back. Each
subcommand lives in a module of this package with an ``add_parser(subparsers)`` function that
sets ``func`` (a callable from the parsed namespace to an exit code). Every subcommand is always
registered: one whose optional dependency (torch, dask) is missing says so, with the install
command, when it runs. Heavy imports happen inside those callables, never at import time.
"""

import argparse as _argparse
import sys as _sys
from collections.abc import Sequence as _Sequence

from lowrank_theory.cli import check, describe, neural, reproduce

__all__ = [
    "SUBCOMMANDS",
    "build_parser",
    "main",
]

#: The subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = (check, reproduce, neural, describe)


def build_parser() -> _argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    from lowrank_theory import __version__

    parser = _argparse.ArgumentParser(
        prog="lowrank-theory",
        description="Verify, simulate and extend the theory of meta-learning with LoRA.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: _Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 a claim failed, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # The command as typed, for the reports that say how they were made.
    args.argv = list(_sys.argv[1:] if argv is None else argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    _sys.exit(main())
