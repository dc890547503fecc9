"""The figure options shared by ``lowrank-theory reproduce`` and ``python -m lowrank_theory.figures``.

``--format``, ``--dpi``, ``--style`` and ``--band`` mean the same in both; this module adds them
to a parser without importing matplotlib (a value is checked only when the option is given).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_figure_options"]


def _formats(text: str) -> tuple[str, ...]:
    from lowrank_theory.figures.make import check_formats

    try:
        return check_formats(part.strip() for part in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--format: {exc}") from None


def _dpi(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dpi must be a number > 0, got {text!r}") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"--dpi must be a number > 0, got {text}")
    return value


def add_figure_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--format``, ``--dpi``, ``--style`` and ``--band`` to ``parser``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_figure_options(parser)
    >>> args = parser.parse_args(["--format", "svg,png", "--dpi", "300", "--band", "minmax"])
    >>> args.formats, args.dpi, args.style, args.band
    (('svg', 'png'), 300.0, None, 'minmax')
    """
    parser.add_argument("--format", dest="formats", type=_formats, default=("png", "pdf"),
                        metavar="FMT[,FMT]",
                        help="figure formats among png, pdf, svg (default: png,pdf)")
    parser.add_argument("--dpi", type=_dpi, default=None, metavar="N",
                        help="resolution of PNG figures (default: 150)")
    parser.add_argument("--style", type=Path, default=None, metavar="FILE.mplstyle",
                        help="a matplotlib style file applied over the house style")
    parser.add_argument("--band", choices=("ci95", "minmax"), default="ci95",
                        help="band around means over seeds: ci95, the 95%% t-interval of the "
                             "mean (of log y on log axes; default), or minmax")
