"""``python -m lowrank_theory.figures [RESULTS] [--out DIR] [--force] [--publish]``: draw figures from tables.

Figures whose table and drawing code are unchanged since they were drawn are kept as they are.
``--format``, ``--dpi``, ``--style`` and ``--band`` are those of ``lowrank-theory reproduce``.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from lowrank_theory.figures.facets import FigureWarning
from lowrank_theory.figures.make import FIGURES, GENERATED_DIR, make_figures, publish
from lowrank_theory.figures.options import add_figure_options
from lowrank_theory.figures.style import load_style


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


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
    add_figure_options(parser)
    args = parser.parse_args(argv)
    if args.style is not None:
        try:
            load_style(args.style)
        except ValueError as exc:
            print(f"error: --style: {exc}", file=sys.stderr)
            return 2
    with warnings.catch_warnings():  # a figure skipped (too many facets) is said on stderr
        warnings.simplefilter("always", FigureWarning)
        warnings.showwarning = _show
        paths = make_figures(args.results, args.out, args.only, force=args.force,
                             formats=args.formats, dpi=args.dpi, style=args.style,
                             band=args.band)
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
