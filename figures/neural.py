"""Figures of the neural experiments, drawn from the tables ``lowrank-theory neural`` writes.

Usage::

    python -m lowrank_theory.figures.neural results/neural/cpu/neural_shallow.csv --out results/neural/figures

Each figure is named after its table and preset (``neural_shallow_cpu.png``). Each function
takes a tidy table and returns a matplotlib Figure; none reruns an experiment.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from lowrank_theory.figures.style import OKABE_ITO, house_style, method_style, save_figure

__all__ = [
    "METHOD_LABEL",
    "NEURAL_STYLE",
    "MODE_LABEL",
    "SHALLOW_VALUES",
    "style_of",
    "LEGEND_INCHES",
    "plot_shallow",
    "plot_pairs",
    "figure_of",
    "figure_name",
    "main",
]

#: Display names of the retraining methods.
METHOD_LABEL = {
    "sr": "SR",
    "lora_ml": "LoRA-ML",
    "reptile": "Reptile",
    "last_layer_ml": "last-layer ML",
    "maml": "MAML",
    "fomaml": "FOMAML",
}
#: Colour and marker of each method: SR and LoRA-ML as in every figure of the project, the
#: other methods in the remaining Okabe-Ito colours, each with its own marker.
NEURAL_STYLE = {
    "SR": method_style("SR"),
    "LoRA-ML": method_style("LoRA-ML"),
    "Reptile": {"color": OKABE_ITO["bluish_green"], "linestyle": "-.", "marker": "^"},
    "last-layer ML": {"color": OKABE_ITO["orange"], "linestyle": ":", "marker": "D"},
    "MAML": {"color": OKABE_ITO["reddish_purple"], "linestyle": "--", "marker": "v"},
    "FOMAML": {"color": OKABE_ITO["sky_blue"], "linestyle": "-.", "marker": "P"},
}
#: Display names of the fine-tuning modes.
MODE_LABEL = {"lora": "LoRA fine-tuning", "last_layer": "last-layer fine-tuning"}
#: Quantities of the shallow table a figure can show, and their axis labels.
SHALLOW_VALUES = {
    "fit_error": "fine-tuned error at the n inputs (vs clean)",
    "test_error": "fine-tuned test error (vs clean)",
    "test_loss": "fine-tuned test MSE",
}


def style_of(method: str) -> dict[str, str]:
    """Colour, line style and marker of a method (table name or display name)."""
    return NEURAL_STYLE.get(METHOD_LABEL.get(method, method), method_style(method))


#: Width (inches) of the strip right of the axes that holds a figure's legend.
LEGEND_INCHES = 1.9


def _legend_right(fig, handles: list, labels: list, title: str | None = None) -> None:
    # The legend gets its own strip right of the axes, so it never covers data.
    width = LEGEND_INCHES / fig.get_figwidth()
    fig.tight_layout(rect=(0.0, 0.0, 1.0 - width, 1.0))
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0 - width, 0.5),
               frameon=False, title=title)


def _mean_se(table: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    out = table.groupby(list(by), sort=False)[value].agg(["mean", "std", "count"]).reset_index()
    out["se"] = (out["std"] / np.sqrt(out["count"])).fillna(0.0)
    return out


def _median_band(table: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    grouped = table.groupby(list(by), sort=True)[value]
    return pd.DataFrame({"median": grouped.median(), "low": grouped.quantile(0.25),
                         "high": grouped.quantile(0.75)}).reset_index()


def plot_shallow(table: pd.DataFrame, value: str = "fit_error", base_d: int = 10,
                 base_T: int = 3):
    """Fine-tuned error of the unseen task against d (at T = base_T) and T (at d = base_d).

    Median over seeds with the interquartile range as error bars, log scale; one colour and
    marker per retraining method; hollow markers for the larger fine-tuning rank (3k at T = 2).
    """
    import matplotlib.pyplot as plt

    if value not in SHALLOW_VALUES:
        raise ValueError(f"value must be one of {list(SHALLOW_VALUES)}, got {value!r}")
    k = int(table["ft_rank"].min())
    with house_style():
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
        panels = (("d", table[table["T"] == base_T], f"dimension d (T = {base_T})"),
                  ("T", table[table["d"] == base_d], f"retraining tasks T (d = {base_d})"))
        for ax, (axis, part, label) in zip(axes, panels, strict=True):
            for method in dict.fromkeys(part["method"]):
                name = METHOD_LABEL.get(method, method)
                style = style_of(method)
                for rank, rows in part[part["method"] == method].groupby("ft_rank"):
                    stats = _median_band(rows, [axis], value)
                    hollow = rank != k
                    ax.errorbar(
                        stats[axis], stats["median"],
                        yerr=[stats["median"] - stats["low"], stats["high"] - stats["median"]],
                        label=f"{name}, rank {rank}" if hollow else name, capsize=3,
                        color=style["color"], marker=style["marker"],
                        linestyle="none" if hollow else style["linestyle"],
                        markerfacecolor="white" if hollow else style["color"],
                    )
            ax.set_xlabel(label)
            ax.set_xticks(sorted(part[axis].unique()))
            ax.set_yscale("log")
        axes[0].set_ylabel(SHALLOW_VALUES[value])
        entries: dict[str, object] = {}
        for ax in axes:
            for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
                entries.setdefault(name, handle)
        _legend_right(fig, list(entries.values()), list(entries.keys()))
    return fig


def plot_pairs(table: pd.DataFrame, value: str = "test_accuracy", label: str | None = None):
    """One facet per fine-tuning mode: ``value`` per retraining method, mean +- s.e.

    Every seed is a small point, the mean a large marker with its standard error; each method
    keeps one colour and marker across facets, the y axis spans the data (not 0), and the
    legend sits outside the axes.
    """
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(table["finetune"]))
    methods = list(dict.fromkeys(table["method"]))
    stats = _mean_se(table, ["finetune", "method"], value)
    low, high = float(table[value].min()), float(table[value].max())
    pad = 0.08 * max(high - low, 1e-3)
    with house_style():
        fig, axes = plt.subplots(1, len(modes), figsize=(2.4 + 2.8 * len(modes), 3.4),
                                 sharey=True, squeeze=False)
        for ax, mode in zip(axes[0], modes, strict=True):
            for i, method in enumerate(methods):
                style = style_of(method)
                seeds = table[(table["finetune"] == mode) & (table["method"] == method)]
                if seeds.empty:
                    continue
                jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else [0.0]
                ax.scatter(i + np.asarray(jitter), seeds[value], s=10, alpha=0.45,
                           color=style["color"], marker=style["marker"], linewidths=0)
                row = stats[(stats["finetune"] == mode) & (stats["method"] == method)].iloc[0]
                ax.errorbar(i, row["mean"], yerr=row["se"], color=style["color"],
                            marker=style["marker"], markersize=8, capsize=4, linestyle="none",
                            label=METHOD_LABEL.get(method, method))
            ax.set_title(MODE_LABEL.get(mode, mode))
            ax.set_xticks(range(len(methods)), [""] * len(methods))
            ax.set_xlim(-0.6, len(methods) - 0.4)
            ax.set_ylim(low - pad, high + pad)
        axes[0][0].set_ylabel(label or value.replace("_", " "))
        _legend_right(fig, *axes[0][0].get_legend_handles_labels(), title="retrained with")
    return fig


def figure_of(table: pd.DataFrame):
    """The figure of a neural table, chosen by its ``experiment`` column."""
    experiment = str(table["experiment"].iloc[0])
    if experiment.endswith("shallow"):
        return plot_shallow(table)
    if experiment.endswith("language"):
        return plot_pairs(table, label="hits@1 of 20 candidates")
    return plot_pairs(table, label="test accuracy on the unseen pair")


def figure_name(path: Path, table: pd.DataFrame) -> str:
    """File stem of a table's figure: the table's stem plus its preset, once."""
    presets = table["preset"].unique() if "preset" in table else []
    if len(presets) == 1 and not path.stem.endswith(f"_{presets[0]}"):
        return f"{path.stem}_{presets[0]}"
    return path.stem


def main(argv: Sequence[str] | None = None) -> int:
    """Draw the figure of each table given on the command line; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", type=Path, help="neural_<experiment>.csv")
    parser.add_argument("--out", type=Path, default=Path("results/neural/figures"))
    args = parser.parse_args(argv)
    for path in args.tables:
        table = pd.read_csv(path)
        for written in save_figure(figure_of(table), args.out, figure_name(path, table)):
            print(f"wrote {written}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
