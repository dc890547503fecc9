"""Tests of figures/neural.py (needs no torch: it only reads tables)."""

import pandas as pd

from figures import neural as fig_neural


def _shallow_table():
    rows = []
    for sweep, d, T in [("d", 5, 3), ("d", 10, 3), ("T", 10, 2), ("T", 10, 5)]:
        for method in ("sr", "lora_ml"):
            for seed in (0, 1):
                rows.append({"experiment": "shallow", "sweep": sweep, "d": d, "T": T,
                             "method": method, "seed": seed, "noise_floor": 0.01,
                             "test_loss": 0.02 + 0.01 * (method == "sr") + 0.001 * seed})
    return pd.DataFrame(rows)


def test_plot_shallow_has_both_sweeps():
    fig = fig_neural.plot_shallow(_shallow_table())
    assert len(fig.axes) == 2
    labels = {t.get_text() for t in fig.axes[0].get_legend().get_texts()}
    assert {"SR", "LoRA-ML"} <= labels


def test_main_writes_figures(tmp_path):
    table = pd.DataFrame({"experiment": "vision", "method": ["sr", "lora_ml"] * 2,
                          "finetune": ["lora"] * 2 + ["last_layer"] * 2, "seed": 0,
                          "test_accuracy": [0.8, 0.9, 0.7, 0.75]})
    path = tmp_path / "neural_vision_cpu.csv"
    table.to_csv(path, index=False)
    assert fig_neural.main([str(path), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "neural_vision_cpu.png").is_file()
