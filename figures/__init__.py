"""Figures of the synthetic experiments, drawn only from result tables.

``make_figures(results_dir)`` writes every figure whose table exists; ``python -m figures
RESULTS_DIR`` does the same from the command line. The style (colour-blind-safe Okabe-Ito
colours, no LaTeX) lives in :mod:`figures.style`.
"""

from figures.make import FIGURES, make_figures, publish

__all__ = ["FIGURES", "make_figures", "publish"]
