"""Figures of the experiments, drawn only from result tables.

``make_figures(results_dir)`` writes every figure whose table exists; ``python -m
lowrank_theory.figures RESULTS_DIR`` does the same from the command line. In a notebook,
``load_results(out, name)`` returns a run's table as a DataFrame and ``draw(table, figure)``
draws any figure from it (or from a subset of its rows). The style (colour-blind-safe Okabe-Ito
colours, no LaTeX) lives in :mod:`lowrank_theory.figures.style`; the rule that keeps a figure
true to its grid in :mod:`lowrank_theory.figures.facets`.
"""

__all__ = ["FIGURES", "draw", "load_results", "make_figures", "publish"]


def __getattr__(name: str):
    # Loaded on first use, so that the command line can import a light submodule
    # (figures.options) without matplotlib and the drawing code.
    if name == "load_results":
        from lowrank_theory.figures.io import load_results

        return load_results
    if name in __all__:
        from lowrank_theory.figures import make

        return getattr(make, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
