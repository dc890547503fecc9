"""Tests of figures/schemes.py: the schemes figures draw from the experiment's table alone."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from lowrank_theory.figures import FIGURES, make_figures
from lowrank_theory.figures.schemes import (
    SCHEME_STYLE,
    crossing_summary,
    plot_schemes_budget,
    plot_schemes_forgetting,
    plot_schemes_n,
    plot_schemes_perturbation,
    scheme_style,
)
from lowrank_theory.simulations.schemes import SchemesConfig, run_schemes

matplotlib.use("Agg")

CONFIG = SchemesConfig(d=5, T=2, k=1, N=200, n_grid=(8, 30), max_rank=3, ft_steps=20,
                       subspace_steps=(0, 10))
#: 2 d k (T + 1): where exact LoRA from SR catches up in the population.
CATCH_UP = 2 * 5 * 1 * 3


@pytest.fixture(scope="module")
def table():
    rows = run_schemes(CONFIG, (0, 1))
    # The runner adds the config's columns; the figures read d, k, T and sigma from them. A
    # copy labelled sigma = 1 stands for a second noise level (the figures only group by it).
    for name in ("d", "k", "T", "sigma"):
        rows[name] = getattr(CONFIG, name)
    return pd.concat([rows, rows.assign(sigma=1.0)], ignore_index=True)


def _logical_lines(text):
    """The note's lines with their wrapped continuations (indented) joined back."""
    lines = []
    for line in text.splitlines():
        if line.startswith("    ") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def test_budget_figure_has_a_panel_per_base_and_n_with_crossings(table):
    fig = plot_schemes_budget(table, sigma=CONFIG.sigma)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(axes) == 6  # SR and LoRA-ML x (smallest n, largest n, population)
    assert all(ax.get_yscale() == "log" for ax in axes)
    (note,) = [t.get_text() for ax in fig.axes for t in ax.texts]
    lines = _logical_lines(note)
    assert lines[0].startswith("From SR, the first budget below the dashed line")
    assert [line.split(":")[0] for line in lines[1:]] == ["n = 8", "n = 30", "population"]
    # The note reports the table's crossings (population: median over crossing seeds).
    pop = crossing_summary(table[table["sigma"] == CONFIG.sigma])
    row = pop[np.isinf(pop["n"]) & (pop["scheme"] == "lora-exact")].iloc[0]
    assert row["crossed"] == 2 and row["median_budget"] <= CATCH_UP
    group = f"{row['median_budget']:.0f} (2/2): "
    assert group in lines[3] and "lora-exact" in lines[3].split(group)[1].split(";")[0]


def test_budget_figure_has_a_facet_per_noise_level(table):
    """Both noise levels are drawn, a block each, rather than the smallest alone."""
    fig = plot_schemes_budget(table)
    assert [sub._suptitle.get_text() for sub in fig.subfigs] == ["sigma = 0.1", "sigma = 1"]
    assert len([ax for ax in fig.axes if ax.get_title()]) == 12


def test_n_figure_has_a_row_per_noise_level(table):
    fig = plot_schemes_n(table)
    assert len(fig.axes) == 4
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in fig.axes)


def test_forgetting_figure_joins_subspace_betas(table):
    fig = plot_schemes_forgetting(table)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert sum(label.startswith("subspace-init") for label in labels) == len(CONFIG.subspace_steps)
    assert "lora-exact" in labels


def test_perturbation_figure_separates_kinds(table):
    fig = plot_schemes_perturbation(table)
    assert len(fig.axes) == 4  # two bases, a block per noise level
    assert all(len(ax.collections) == 2 for ax in fig.axes)  # optimised and random scatter


def test_crossing_summary_counts_seeds_that_cross():
    rows = pd.DataFrame({
        "seed": [0, 0, 1, 1, 2, 2], "n": math.inf, "base": "SR", "scheme": "lora-exact",
        "budget": [10, 20] * 3, "excess_loss": 1.0, "d": 5, "k": 1, "T": 2, "sigma": 0.1,
        "crossing_budget": [20, 20, 40, 40, np.nan, np.nan]})
    out = crossing_summary(rows).iloc[0]
    assert out["median_budget"] == 30 and out["crossed"] == 2 and out["seeds"] == 3


def test_styles_and_registration(tmp_path, table):
    assert scheme_style("subspace-init (beta=1, steps=30)") is SCHEME_STYLE["subspace-init"]
    assert scheme_style("interpolation (full)") is SCHEME_STYLE["interpolation (full)"]
    assert len({(s["color"], s["marker"]) for s in SCHEME_STYLE.values()}) == len(SCHEME_STYLE)
    assert [(s.stem, s.plot) for s in FIGURES["schemes"]] == [
        ("schemes_budget", plot_schemes_budget), ("schemes_n", plot_schemes_n),
        ("schemes_forgetting", plot_schemes_forgetting),
        ("schemes_perturbation", plot_schemes_perturbation)]
    with pytest.raises(ValueError, match="lacks columns"):
        plot_schemes_budget(table.drop(columns=["target_loss"]))


def test_make_figures_reads_the_schemes_table(tmp_path, table, monkeypatch):
    """Saving is the slow part: one figure is enough to show the table-to-file path."""
    monkeypatch.setitem(FIGURES, "schemes", FIGURES["schemes"][-1:])
    table.to_csv(tmp_path / "schemes.csv", index=False)
    paths = make_figures(tmp_path, tmp_path / "figures", ["schemes"])
    assert sorted(p.name for p in paths) == ["schemes_perturbation.pdf",
                                             "schemes_perturbation.png"]
