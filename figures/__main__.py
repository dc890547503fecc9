"""``python -m lowrank_theory.figures [RESULTS] [--out DIR] [--force] [--publish]``: draw figures from tables.

Figures whose table and drawing code are unchanged since they were drawn are kept as they are.
"""

from __future__ import annotations

import argparse
import sys

from lowrank_theory.figures.make import FIGURES, GENERATED_DIR, make_figures, publish


def main(argv: list[str] | None = None) -> int:
    """Draw the figures that are out of date; return 0, or 1 when no table was found."""
    parser = argparse.ArgumentParser(prog="python -m lowrank_theory.figures", description=__doc__)
    parser.add_argument("results", nargs="?", default="results", help="directory of result tables")
    parser.add_argument("--out", default=None, help="figure directory (default RESULTS/figures)")
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), metavar="NAME",
                        help=f"experiments to draw (choose from {', '.join(FIGURES)})")
    parser.add_argument("--force", action="store_true",
                        help="redraw every figure, even those that are up to date")
    parser.add_argument("--publish", action="store_true",
                        help=f"also copy the README's PNGs to {GENERATED_DIR}")
    args = parser.parse_args(argv)
    paths = make_figures(args.results, args.out, args.only, force=args.force)
    if not paths:
        print(f"no result tables in {args.results}", file=sys.stderr)
        return 1
    if args.publish:
        publish(paths)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
