"""Tests of figures/atlas.py: the atlas figure and its per-cell summary, from synthetic tables."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
from lowrank_theory.figures import FIGURES, make_figures
from lowrank_theory.figures.atlas import atlas_summary, plot_atlas

matplotlib.use("Agg")

DS, KS, TS = (3, 6, 10), (1, 2), (3, 5)


def atlas_table(families=4, rounds=1000):
    """An atlas table shaped like the experiment's: per cell, the first ``d // 3`` families have
    a spurious minimum and reach A* in ``100 d T`` rounds except the last family."""
    rows = []
    for k in KS:
        for d in DS:
            for T in TS:
                for seed in range(families):
                    reached = seed < families - 1
                    rows.append({
                        "config_hash": f"h{d}-{k}-{T}-{rounds}", "seed": seed, "d": d, "k": k,
                        "T": T, "search_starts": 4, "rounds": rounds,
                        "spurious": seed < d // 3, "protocol_reached": reached,
                        "protocol_rounds": 100.0 * d * T + seed if reached else np.nan,
                    })
    return pd.DataFrame(rows)


def test_summary_counts_each_cell():
    summary = atlas_summary(atlas_table())
    assert len(summary) == len(DS) * len(KS) * len(TS)
    cell = summary.set_index(["k", "d", "T"]).loc[(2, 6, 5)]
    assert cell["families"] == 4 and cell["spurious"] == 2 and cell["reached"] == 3
    assert cell["median_rounds"] == 3001.0  # median of 3000, 3001, 3002
    assert cell["kT_over_d"] == pytest.approx(10 / 6)


def test_summary_refuses_to_pool_configs():
    """Two configs the figure cannot tell apart (same shown fields) must not be averaged."""
    table = atlas_table()
    twin = table[table["d"] == 3].assign(config_hash="other")
    with pytest.raises(ValueError, match="draw them apart"):
        atlas_summary(pd.concat([table, twin]))
    with pytest.raises(ValueError, match="twice"):
        atlas_summary(pd.concat([table, table.iloc[:1]]))
    with pytest.raises(ValueError, match="lacks columns"):
        atlas_summary(table.drop(columns=["protocol_rounds"]))


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_figure_has_three_rows_per_k_with_counts_and_the_kT_equals_d_staircase():
    fig = plot_atlas(atlas_table())
    axes = np.array(fig.axes[:6]).reshape(3, 2)  # colour bars come after the panels
    assert [ax.get_title().splitlines()[0] for ax in axes[0]] == ["k = 1", "k = 2"]
    for ax in axes.ravel():
        assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "6", "10"]
        assert len(ax.images) == 1 and len(ax.texts) == len(DS) * len(TS)
    # Row 1, k = 2, d = 6: 2 of 4 families have a spurious minimum.
    assert "50%\n2/4" in _texts(axes[0, 1])
    assert "75%\n3/4" in _texts(axes[1, 1])
    assert "3.0k\nof 3" in _texts(axes[2, 1])
    # kT > d left of the staircase: k = 1 at d = 3, T = 5; k = 2 at d = 3 and at d = 6, T = 5.
    for ax, (xs, ys) in zip(axes[0], (([-0.5, -0.5, 0.5, 0.5], [-0.5, 0.5, 0.5, 1.5]),
                                      ([0.5, 0.5, 1.5, 1.5], [-0.5, 0.5, 0.5, 1.5]))):
        (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("kT = d")]
        assert line.get_xdata().tolist() == xs and line.get_ydata().tolist() == ys
    matplotlib.pyplot.close(fig)


def test_a_second_round_budget_gets_its_own_panels():
    table = pd.concat([atlas_table(rounds=1000), atlas_table(rounds=3000)])
    fig = plot_atlas(table)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4
    assert sum("budget 3000 rounds" in t for t in titles) == 2
    matplotlib.pyplot.close(fig)


def test_a_cell_where_no_run_reached_says_so():
    table = atlas_table()
    table.loc[table["d"] == 10, ["protocol_reached", "protocol_rounds"]] = [False, np.nan]
    fig = plot_atlas(table)
    assert _texts(fig.axes[4]).count("none\nreached") == len(TS)
    matplotlib.pyplot.close(fig)


def test_make_figures_draws_the_atlas_from_its_table(tmp_path):
    assert [(s.stem, s.plot) for s in FIGURES["atlas"]] == [("atlas", plot_atlas)]
    atlas_table().to_csv(tmp_path / "atlas.csv", index=False)
    paths = make_figures(tmp_path, tmp_path / "figures", ["atlas"])
    assert sorted(p.name for p in paths) == ["atlas.pdf", "atlas.png"]
