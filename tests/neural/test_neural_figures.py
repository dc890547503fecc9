"""Tests of figures/neural.py (needs no torch: it only reads tables)."""

import matplotlib.colors as mcolors
import pandas as pd
import pytest
from lowrank_theory.figures import neural as fig_neural


def _shallow_table():
    rows = []
    for d, T in [(5, 3), (10, 3), (20, 3), (10, 2), (10, 5)]:
        for method in ("sr", "lora_ml"):
            for rank in ((1, 3) if T == 2 else (1,)):
                for seed in range(4):
                    rows.append({"experiment": "neural_shallow", "d": d, "T": T, "ft_rank": rank,
                                 "method": method, "seed": seed, "preset": "cpu",
                                 "fit_error": 0.02 + 0.05 * (method == "sr") + 0.001 * seed})
    return pd.DataFrame(rows)


def _pairs_table():
    rows = []
    for mode in ("lora", "last_layer"):
        for i, method in enumerate(("sr", "lora_ml", "reptile", "last_layer_ml")):
            for seed in range(3):
                rows.append({"experiment": "neural_vision", "method": method, "finetune": mode,
                             "seed": seed, "preset": "cpu",
                             "test_accuracy": 0.80 + 0.02 * i + 0.005 * seed})
    return pd.DataFrame(rows)


def test_plot_shallow_has_both_sweeps_and_the_rank_3k_run():
    fig = fig_neural.plot_shallow(_shallow_table())
    assert len(fig.axes) == 2
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"SR", "LoRA-ML", "SR, rank 3", "LoRA-ML, rank 3"} == labels
    assert [tuple(ax.get_xticks()) for ax in fig.axes] == [(5, 10, 20), (2, 3, 5)]
    with pytest.raises(ValueError, match="value must be one of"):
        fig_neural.plot_shallow(_shallow_table(), value="accuracy")


def test_plot_pairs_one_style_per_method_facets_and_a_tight_axis():
    """Every method has its own colour and marker in every facet, the y axis spans the data
    (not 0) and the legend is outside the axes."""
    table = _pairs_table()
    fig = fig_neural.plot_pairs(table)
    assert [ax.get_title() for ax in fig.axes] == ["LoRA fine-tuning", "last-layer fine-tuning"]
    styles = [fig_neural.style_of(m) for m in table["method"].unique()]
    assert len({s["color"] for s in styles}) == len({s["marker"] for s in styles}) == 4
    low, high = fig.axes[0].get_ylim()
    assert low > 0.7 and high < 0.9
    legend = fig.legends[0]
    fig.canvas.draw()
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert box.x0 >= ax.get_window_extent().x1  # right of every facet: covers no data
    per_facet = [[(mcolors.to_hex(c.lines[0].get_color()), c.lines[0].get_marker())
                  for c in ax.containers] for ax in fig.axes]
    assert per_facet[0] == per_facet[1] and len(set(per_facet[0])) == 4


def test_main_writes_figures_named_by_preset(tmp_path):
    path = tmp_path / "neural_vision.csv"
    _pairs_table().to_csv(path, index=False)
    shallow = tmp_path / "neural_shallow.csv"
    _shallow_table().to_csv(shallow, index=False)
    assert fig_neural.main([str(path), str(shallow), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "neural_vision_cpu.png").is_file()
    assert (tmp_path / "figs" / "neural_shallow_cpu.png").is_file()
    assert (fig_neural.band_stats(_pairs_table(), "method", "test_accuracy")["count"] == 6).all()
