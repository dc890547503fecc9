"""Every figure's text is readable: inside the figure, at least 8 pt at the size it is saved at.

Each figure of each experiment is drawn from a table of two configs (one field swept, so the
facet layout is drawn too; for vary, the paper's whole grid) and rendered; then every visible
text artist (titles, labels, tick labels, legends, annotations) must lie inside the figure's
canvas, and its font size must be at least :data:`MIN_POINTS`. A figure is saved at its own
size (the house style's ``savefig.bbox: tight`` only trims margins), so its points are the
printed points. The negative controls draw a clipped title and a 6 pt note and require the
check to report both.
"""

from __future__ import annotations

import dataclasses

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from lowrank_theory.figures.make import FIGURES, NothingToDraw
from matplotlib.text import Text
from test_figures import vary_table
from test_figures_grid import BASES, other_config, rows_of

matplotlib.use("Agg")

#: Smallest font size (points) of any text of a figure.
MIN_POINTS = 8.0
#: Slack (pixels) for anti-aliasing at the canvas edge.
SLACK = 1.0
#: The field swept to draw each experiment's figures with two facet blocks.
SWEPT = {"phase": "restarts", "rate": "sigma", "landscape": "k", "schemes": "sigma",
         "atlas": "k",
         "neural_shallow": "d", "neural_vision": "width", "neural_language": "rank"}


def _undrawn_tick_labels(fig) -> set[int]:
    """Tick labels matplotlib keeps but does not draw: those of ticks outside the view."""
    out = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            span = high - low
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if not (low - 1e-9 * span <= tick.get_loc() <= high + 1e-9 * span):
                    out |= {id(tick.label1), id(tick.label2)}
    return out


def text_problems(fig) -> list[str]:
    """The drawn texts of ``fig`` that lie outside it or are smaller than MIN_POINTS.

    Drawn at 40 dpi: positions relative to the figure and sizes in points do not depend on
    the resolution, and rasterising fewer pixels is faster.
    """
    fig.set_dpi(40)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    undrawn = _undrawn_tick_labels(fig)
    problems = []
    for text in fig.findobj(Text):
        if (not text.get_visible() or not text.get_text().strip() or id(text) in undrawn
                or not text.axes and text.figure is None):
            continue
        extent = text.get_window_extent(renderer)
        if (extent.x0 < box.x0 - SLACK or extent.y0 < box.y0 - SLACK
                or extent.x1 > box.x1 + SLACK or extent.y1 > box.y1 + SLACK):
            problems.append(f"outside the figure: {text.get_text()[:60]!r}")
        if text.get_fontsize() < MIN_POINTS:
            problems.append(f"{text.get_fontsize():.1f} pt: {text.get_text()[:60]!r}")
    return problems


def _table(experiment: str) -> pd.DataFrame:
    if experiment == "vary":
        return vary_table(steps=6, seeds=(0, 1)).assign(experiment="vary",
                                                        config_hash="paper-grid")
    base = BASES[experiment]
    other = dataclasses.replace(base, **{SWEPT[experiment]: getattr(
        other_config(base, SWEPT[experiment]), SWEPT[experiment])})
    return pd.concat([rows_of(experiment, base), rows_of(experiment, other)], ignore_index=True)


CASES = [(experiment, spec) for experiment, specs in FIGURES.items() for spec in specs]


@pytest.mark.parametrize(("experiment", "spec"), CASES, ids=[s.stem for _, s in CASES])
def test_every_text_lies_inside_the_figure_at_8_points_or_more(experiment, spec):
    try:
        fig = spec.draw(_table(experiment))
    except NothingToDraw:
        pytest.skip(f"{spec.stem} has nothing to draw in this table")
    problems = text_problems(fig)
    plt.close(fig)
    assert not problems, f"{spec.stem}: {problems[:5]}"


def test_the_check_reports_a_clipped_title_and_small_text():
    """Negative control: a title wider than its figure and a 6 pt note are both reported; the
    same figure with a short title and 8 pt text passes."""
    fig = plt.figure(figsize=(2, 2))
    fig.suptitle("a title far too long to fit across a two-inch figure at ten points")
    fig.text(0.5, 0.5, "note", fontsize=6)
    problems = text_problems(fig)
    assert any(p.startswith("outside") for p in problems)
    assert any(p.startswith("6.0 pt") for p in problems)
    plt.close(fig)
    fig = plt.figure(figsize=(2, 2))
    fig.suptitle("short")
    fig.text(0.5, 0.5, "note", fontsize=8)
    assert text_problems(fig) == []
    plt.close(fig)
