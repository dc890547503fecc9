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
from lowrank_theory.figures.bands import DEFAULT_BAND, band_caption, band_stats, check_band
from lowrank_theory.figures.facets import faceted, tag
from lowrank_theory.figures.plots import star_layout, wrap
from lowrank_theory.figures.style import (
    OKABE_ITO,
    canvas,
    house_style,
    method_style,
    save_figure,
)

__all__ = [
    "METHOD_LABEL",
    "NEURAL_STYLE",
    "MODE_LABEL",
    "SHALLOW_VALUES",
    "style_of",
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


def _legend_right(fig, handles: list, labels: list, title: str | None = None) -> None:
    # The legend gets its own strip right of the axes (constrained layout), so it never
    # covers data.
    fig.legend(handles, labels, loc="outside right center", frameon=False, title=title)


def _interval(stats: pd.DataFrame) -> list:
    """Error-bar lengths below and above the mean (zero where one seed gives no band)."""
    return [np.maximum(stats["mean"] - stats["low"], 0),
            np.maximum(stats["high"] - stats["mean"], 0)]


def plot_shallow(table: pd.DataFrame, value: str = "fit_error", base_d: int = 10,
                 base_T: int = 3, band: str = DEFAULT_BAND):
    """Fine-tuned error of the unseen task against d (at T = base_T) and T (at d = base_d).

    Mean over seeds with its band as error bars (default: the 95% t-interval of the mean;
    :mod:`lowrank_theory.figures.bands`), log scale; one colour and marker per retraining
    method; hollow markers for the larger fine-tuning rank (3k at T = 2). A panel per
    parameter that varies (the other at its base value); on a Cartesian grid over d and T, d
    is the x axis and T a facet, as is any other swept field.
    """
    if value not in SHALLOW_VALUES:
        raise ValueError(f"value must be one of {list(SHALLOW_VALUES)}, got {value!r}")
    check_band(band)
    missing = [c for c in ("d", "T", "method", "seed", "ft_rank", value) if c not in table]
    if missing:
        raise ValueError(f"the shallow table lacks columns {missing}")
    defaults = {"d": base_d, "T": base_T}
    _, _, varying, star = star_layout(table, ("d", "T"), defaults)
    native = [*(varying if star or not varying else varying[:1]), "method", "ft_rank"]
    return faceted(_draw_shallow, table, native, name="neural_shallow",
                   experiment="neural_shallow", value=value, defaults=defaults, band=band)


def _draw_shallow(table: pd.DataFrame, *, value: str, defaults: dict, band: str, fig=None):
    _, centre, varying, _ = star_layout(table, ("d", "T"), defaults)
    panels = varying or ["d"]
    k = int(table["ft_rank"].min())
    label = {"d": "dimension d", "T": "retraining tasks T"}
    width = 3.2 + 3.6 * len(panels)
    with house_style():
        fig = canvas(fig, (width, 4.0))
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, axis in zip(axes, panels, strict=True):
            other = "T" if axis == "d" else "d"
            part = table[table[other] == centre[other]]
            for method in dict.fromkeys(part["method"]):
                name = METHOD_LABEL.get(method, method)
                style = style_of(method)
                for rank, rows in part[part["method"] == method].groupby("ft_rank"):
                    stats = band_stats(rows, axis, value, band, log=True)
                    hollow = rank != k
                    bars = ax.errorbar(
                        stats.index, stats["mean"], yerr=_interval(stats),
                        label=f"{name}, rank {rank}" if hollow else name, capsize=3,
                        color=style["color"], marker=style["marker"],
                        linestyle="none" if hollow else style["linestyle"],
                        markerfacecolor="white" if hollow else style["color"],
                    )
                    for artist in bars.get_children():
                        tag(artist, rows, x=axis)
            ax.set_xlabel(f"{label[axis]} ({other} = {centre[other]})")
            ax.set_xticks(sorted(part[axis].unique()))
            ax.set_yscale("log")
        axes[0].set_ylabel(SHALLOW_VALUES[value])
        entries: dict[str, object] = {}
        for ax in axes:
            for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
                entries.setdefault(name, handle)
        _legend_right(fig, list(entries.values()), list(entries.keys()))
        note = (" Hollow markers: fine-tuning adapters of rank 3k at T = 2."
                if table["ft_rank"].nunique() > 1 else "")
        fig.suptitle(wrap(f"Shallow network, {band_caption(band, table['seed'].nunique(), log=True)}."
                          + note, width, 12))
    return fig


def plot_pairs(table: pd.DataFrame, value: str = "test_accuracy", label: str | None = None,
               band: str = DEFAULT_BAND):
    """One facet per fine-tuning mode: ``value`` per retraining method, mean and band.

    Every seed is a small point, the mean a large marker with its band (default: the 95%
    t-interval of the mean); each method keeps one colour and marker across facets, the y axis
    spans the data (not 0), and the legend sits outside the axes. Any swept config field
    becomes a facet of its own.
    """
    check_band(band)
    missing = [c for c in ("finetune", "method", "seed", value) if c not in table]
    if missing:
        raise ValueError(f"the table lacks columns {missing}")
    experiment = str(table["experiment"].iloc[0]) if "experiment" in table else None
    # One y range for every facet, spanning the seeds and the bands.
    keys = [c for c in ("config_hash", "finetune", "method") if c in table]
    stats = band_stats(table, keys, value, band)
    limits = (min(float(table[value].min()), float(stats["low"].min())),
              max(float(table[value].max()), float(stats["high"].max())))
    return faceted(_draw_pairs, table, ["finetune", "method"], name=experiment or "pairs",
                   experiment=experiment, value=value, label=label, band=band, limits=limits)


def _draw_pairs(table: pd.DataFrame, *, value: str, label: str | None, band: str,
                limits: tuple[float, float], fig=None):
    modes = list(dict.fromkeys(table["finetune"]))
    methods = list(dict.fromkeys(table["method"]))
    low, high = limits
    pad = 0.08 * max(high - low, 1e-3)
    width = 4.2 + 2.8 * len(modes)
    with house_style():
        fig = canvas(fig, (width, 4.0))
        axes = fig.subplots(1, len(modes), sharey=True, squeeze=False)
        for ax, mode in zip(axes[0], modes, strict=True):
            for i, method in enumerate(methods):
                style = style_of(method)
                seeds = table[(table["finetune"] == mode) & (table["method"] == method)]
                if seeds.empty:
                    continue
                jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else [0.0]
                tag(ax.scatter(i + np.asarray(jitter), seeds[value], s=10, alpha=0.45,
                               color=style["color"], marker=style["marker"], linewidths=0),
                    seeds)
                stats = band_stats(seeds, "method", value, band)
                bars = ax.errorbar([i], stats["mean"], yerr=_interval(stats),
                                   color=style["color"], marker=style["marker"], markersize=8,
                                   capsize=4, linestyle="none",
                                   label=METHOD_LABEL.get(method, method))
                for artist in bars.get_children():
                    tag(artist, seeds)
            ax.set_title(MODE_LABEL.get(mode, mode))
            ax.set_xticks(range(len(methods)), [""] * len(methods))
            ax.set_xlim(-0.6, len(methods) - 0.4)
            ax.set_ylim(low - pad, high + pad)
        axes[0][0].set_ylabel(label or value.replace("_", " "))
        _legend_right(fig, *axes[0][0].get_legend_handles_labels(), title="retrained with")
        fig.suptitle(wrap(band_caption(band, table["seed"].nunique()).capitalize()
                          + "; small points: single seeds", width, 12))
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
