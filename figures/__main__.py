"""``python -m lowrank_theory.figures [RESULTS] [--out DIR] [--force] [--publish]``: draw figures from tables.

Figures whose table and drawing code are unchanged since they were drawn are kept as they are.
``--format``, ``--dpi``, ``--style`` and ``--band`` are those of ``lowrank-theory reproduce``.
Exit codes: 0 drawn (or up to date), 1 no table found, 2 a usage error or a folder, table or
figure that cannot be used as it is (the message names it).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from lowrank_theory.figures.facets import FigureWarning
from lowrank_theory.figures.io import TableError
from lowrank_theory.figures.make import FIGURES, GENERATED_DIR, make_figures, publish
from lowrank_theory.figures.options import add_figure_options
from lowrank_theory.figures.style import load_style
from lowrank_theory.simulations.outdir import OutputDirError


def _folder(text: str) -> str:
    if not text.strip() or "\0" in text:
        raise argparse.ArgumentTypeError(f"must name a folder, got {text[:60]!r} (write . for "
                                         "the current folder)")
    return text


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Draw the figures that are out of date; return 0, or 1 when no table was found."""
    parser = argparse.ArgumentParser(prog="python -m lowrank_theory.figures", description=__doc__)
    parser.add_argument("results", nargs="?", default="results", type=_folder,
                        help="directory of result tables")
    parser.add_argument("--out", default=None, type=_folder,
                        help="figure directory (default RESULTS/figures)")
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), metavar="NAME",
                        help=f"experiments to draw (choose from {', '.join(FIGURES)})")
    parser.add_argument("--force", action="store_true",
                        help="redraw every figure, even those that are up to date")
    parser.add_argument("--publish", action="store_true",
                        help=f"also copy the README's PNGs to {GENERATED_DIR}")
    add_figure_options(parser)
    args = parser.parse_args(argv)
    if Path(args.results).exists() and not Path(args.results).is_dir():
        print(f"error: RESULTS {args.results} is a file; give the folder of result tables",
              file=sys.stderr)
        return 2
    if args.style is not None:
        try:
            load_style(args.style)
        except ValueError as exc:
            print(f"error: --style: {exc}", file=sys.stderr)
            return 2
    try:
        with warnings.catch_warnings():  # a figure skipped (too many facets) is said on stderr
            warnings.simplefilter("always", FigureWarning)
            warnings.showwarning = _show
            paths = make_figures(args.results, args.out, args.only, force=args.force,
                                 formats=args.formats, dpi=args.dpi, style=args.style,
                                 band=args.band)
        if paths and args.publish:
            publish(paths)
    except (TableError, OutputDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename if exc.filename is not None else args.out or args.results
        print(f"error: {exc.strerror or exc}: {where}", file=sys.stderr)
        return 2
    if not paths:
        print(f"no result tables in {args.results}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
