"""Figures of the experiments, drawn only from result tables.

``make_figures(results_dir)`` writes every figure whose table exists; ``python -m
lowrank_theory.figures RESULTS_DIR`` does the same from the command line. In a notebook,
``load_results(out, name)`` returns a run's table as a DataFrame and ``draw(table, figure)``
draws any figure from it (or from a subset of its rows). The style (colour-blind-safe Okabe-Ito
colours, no LaTeX) lives in :mod:`lowrank_theory.figures.style`; the rule that keeps a figure
true to its grid in :mod:`lowrank_theory.figures.facets`.
"""

from lowrank_theory.figures.io import load_results
from lowrank_theory.figures.make import FIGURES, draw, make_figures, publish

__all__ = ["FIGURES", "draw", "load_results", "make_figures", "publish"]
