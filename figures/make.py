"""Write every figure whose result table exists: ``make_figures(results, out)``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from figures import plots, schemes
from figures.io import read_table
from figures.style import save_figure

#: For each experiment, the figures drawn from its table: (file stem, drawing function).
FIGURES: dict[str, tuple[tuple[str, Callable[[pd.DataFrame], object]], ...]] = {
    "vary": (("vary", plots.plot_vary),) + tuple(
        (f"vary_{p}", (lambda table, p=p: plots.plot_vary(table, params=(p,))))
        for p in plots.VARY_VALUES),
    "phase": (("phase_diagram", plots.plot_phase),),
    "rate": (("adaptation_rate", plots.plot_rate),),
    "landscape": (("landscape", plots.plot_landscape),),
    "schemes": (("schemes_budget", schemes.plot_schemes_budget),
                ("schemes_n", schemes.plot_schemes_n),
                ("schemes_forgetting", schemes.plot_schemes_forgetting),
                ("schemes_perturbation", schemes.plot_schemes_perturbation)),
}

#: Where ``publish`` copies the PNGs the README shows.
GENERATED_DIR = Path(__file__).resolve().parent / "generated"
#: The figures the README shows (the per-parameter ``vary_*`` figures repeat the ``vary`` grid).
PUBLISHED: tuple[str, ...] = ("vary", "phase_diagram", "adaptation_rate", "landscape",
                             "schemes_budget")


def make_figures(results: str | os.PathLike, out: str | os.PathLike | None = None,
                 only: Iterable[str] | None = None) -> list[Path]:
    """Draw the figures of the experiments in ``only`` (default: all) from their tables.

    Parameters
    ----------
    results : path-like
        Directory holding the result tables (``<experiment>.csv`` / ``.parquet``).
    out : path-like, optional
        Where figures go; default ``results/figures``.
    only : iterable of str, optional
        Experiment names; those without a table are skipped.

    Returns
    -------
    list of Path
        The PNG and PDF files written.
    """
    names = list(FIGURES) if only is None else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown experiments {unknown}; valid: {', '.join(FIGURES)}")
    out = Path(results) / "figures" if out is None else Path(out)
    written: list[Path] = []
    for name in names:
        try:
            table = read_table(results, name)
        except FileNotFoundError:
            continue
        for stem, draw in FIGURES[name]:
            written += save_figure(draw(table), out, stem)
    return written


def publish(paths: Iterable[Path], directory: str | os.PathLike = GENERATED_DIR,
            names: Iterable[str] = PUBLISHED) -> list[Path]:
    """Copy the PNGs among ``paths`` whose stem is in ``names`` into ``directory``.

    ``directory`` defaults to ``figures/generated``, the README's committed figures.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = set(names)
    copied = []
    for path in paths:
        if path.suffix == ".png" and path.stem in names:
            copied.append(Path(shutil.copy2(path, directory / path.name)))
    return copied
