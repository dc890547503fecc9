"""Command line: ``lowrank-theory {check,reproduce,neural}`` (also ``python -m lowrank_theory``).

Each subcommand is registered by the module that owns it, through an ``add_parser(subparsers)``
function that sets ``func`` (a callable from the parsed namespace to an exit code). Heavy
imports (torch, dask) happen inside those callables, never at import time. Argument types shared
by the subcommands live in :mod:`lowrank_theory._validation`, so no subcommand imports this
module back.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = [
    "build_parser",
    "main",
]

#: Modules that register a subcommand (each defines ``add_parser``).
_SUBCOMMAND_MODULES = (
    "lowrank_theory.theorems",
    "simulations.cli",
    "lowrank_theory.neural.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available subcommand registered."""
    from lowrank_theory import __version__

    parser = argparse.ArgumentParser(
        prog="lowrank-theory",
        description="Verify, simulate and extend the theory of meta-learning with LoRA.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a subcommand whose module is not there yet
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 a claim failed, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
