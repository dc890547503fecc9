"""Figures of the synthetic experiments, drawn only from result tables.

``make_figures(results_dir)`` writes every figure whose table exists; ``python -m lowrank_theory.figures
RESULTS_DIR`` does the same from the command line. The style (colour-blind-safe Okabe-Ito
colours, no LaTeX) lives in :mod:`lowrank_theory.figures.style`.
"""

from lowrank_theory.figures.make import FIGURES, make_figures, publish

__all__ = ["FIGURES", "make_figures", "publish"]
