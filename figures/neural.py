"""Figures of the neural experiments, drawn from the tables ``lowrank-theory neural`` writes.

Usage::

    python -m figures.neural results/neural/neural_shallow_cpu.csv --out results/neural/figures

Each function takes a tidy table and returns a matplotlib Figure; none reruns an experiment.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from figures.style import house_style, method_style, save_figure

#: Display names of the retraining methods (the style table knows "SR" and "LoRA-ML").
METHOD_LABEL = {
    "sr": "SR",
    "lora_ml": "LoRA-ML",
    "reptile": "Reptile",
    "last_layer_ml": "last-layer ML",
    "maml": "MAML",
    "fomaml": "FOMAML",
}


def _mean_se(table: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    out = table.groupby(list(by), sort=True)[value].agg(["mean", "std", "count"]).reset_index()
    out["se"] = (out["std"] / np.sqrt(out["count"])).fillna(0.0)
    return out


def plot_shallow(table: pd.DataFrame):
    """Fine-tuned test MSE on the unseen task against d (T = 3) and against T (d = 10).

    Mean over seeds with standard-error bars, log scale, the noise floor sigma^2 dashed.
    """
    import matplotlib.pyplot as plt

    with house_style():
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
        for ax, sweep, label in zip(axes, ("d", "T"), ("dimension d", "retraining tasks T"),
                                    strict=True):
            part = table[table["sweep"] == sweep]
            if sweep == "T":  # the shared centre (d = 10, T = 3) is stored under sweep "d"
                centre = table[(table["sweep"] == "d") & (table["d"] == part["d"].iloc[0])]
                part = pd.concat([part, centre]) if len(part) else part
            stats = _mean_se(part, ["method", sweep], "test_loss")
            for method, rows in stats.groupby("method", sort=False):
                name = METHOD_LABEL.get(method, method)
                ax.errorbar(rows[sweep], rows["mean"], yerr=rows["se"], label=name, capsize=3,
                            **method_style(name))
            if "noise_floor" in table:
                ax.axhline(float(table["noise_floor"].iloc[0]), color="#555555", ls=":",
                           label="noise floor")
            ax.set_xlabel(label)
            ax.set_yscale("log")
        axes[0].set_ylabel("unseen-task test MSE after fine-tuning")
        axes[0].legend()
        fig.tight_layout()
    return fig


def plot_pairs(table: pd.DataFrame, value: str = "test_accuracy"):
    """Bars of ``value`` (mean +- s.e. over seeds) per retraining method and fine-tuning mode."""
    import matplotlib.pyplot as plt

    stats = _mean_se(table, ["finetune", "method"], value)
    modes = list(dict.fromkeys(stats["finetune"]))
    methods = list(dict.fromkeys(stats["method"]))
    width = 0.8 / len(methods)
    with house_style():
        fig, ax = plt.subplots(figsize=(1.6 + 1.8 * len(modes), 3.6))
        for i, method in enumerate(methods):
            rows = stats[stats["method"] == method].set_index("finetune").reindex(modes)
            name = METHOD_LABEL.get(method, method)
            ax.bar(np.arange(len(modes)) + (i - (len(methods) - 1) / 2) * width, rows["mean"],
                   width, yerr=rows["se"], capsize=3, label=name,
                   color=method_style(name)["color"] if name in ("SR", "LoRA-ML") else None)
        ax.set_xticks(np.arange(len(modes)), [f"fine-tune: {m}" for m in modes])
        ax.set_ylabel(value.replace("_", " "))
        ax.legend(fontsize="small")
        fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    """Draw the figure of each table given on the command line; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", type=Path, help="neural_<experiment>_<size>.csv")
    parser.add_argument("--out", type=Path, default=Path("results/neural/figures"))
    args = parser.parse_args(argv)
    for path in args.tables:
        table = pd.read_csv(path)
        experiment = str(table["experiment"].iloc[0])
        fig = plot_shallow(table) if experiment == "shallow" else plot_pairs(table)
        for written in save_figure(fig, args.out, path.stem):
            print(f"wrote {written}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
