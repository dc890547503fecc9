"""Figures of the ``schemes`` experiment, drawn from its table alone.

Four figures: excess loss against the parameter budget (with SR's catch-up budgets), excess
loss against ``n``, forgetting against fit for the preserving schemes, and the harmful-task
gain of post-fine-tuning perturbations against the new-task loss they cost.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from lowrank_theory.figures.plots import LOG_FLOOR, _require
from lowrank_theory.figures.style import OKABE_ITO, REFERENCE_COLOR, house_style

__all__ = [
    "scheme_style",
    "crossing_summary",
    "crossing_lines",
    "plot_schemes_budget",
    "plot_schemes_n",
    "plot_schemes_forgetting",
    "plot_schemes_perturbation",
]

#: Columns every schemes figure reads.
COLUMNS = ["seed", "n", "base", "scheme", "budget", "excess_loss", "d", "k", "T", "sigma"]
#: Bases, in panel order.
BASES = ("SR", "LoRA-ML")
#: Colour, line style and marker of each scheme family (the label up to its parameters).
SCHEME_STYLE: dict[str, dict[str, str]] = {
    "lora-exact": {"color": OKABE_ITO["blue"], "linestyle": "-", "marker": "o"},
    "lora-gd": {"color": OKABE_ITO["sky_blue"], "linestyle": "--", "marker": "v"},
    "adaptive-rank": {"color": OKABE_ITO["bluish_green"], "linestyle": "-", "marker": "^"},
    "mixture": {"color": OKABE_ITO["reddish_purple"], "linestyle": "-.", "marker": "D"},
    "interpolation (lora)": {"color": OKABE_ITO["orange"], "linestyle": "--", "marker": "P"},
    "interpolation (full)": {"color": OKABE_ITO["orange"], "linestyle": "none", "marker": "*"},
    "full": {"color": OKABE_ITO["black"], "linestyle": "none", "marker": "X"},
    "subspace-init": {"color": OKABE_ITO["vermillion"], "linestyle": ":", "marker": "s"},
    "perturbation": {"color": OKABE_ITO["vermillion"], "linestyle": "none", "marker": "o"},
}
#: Schemes of the budget and n figures (subspace-init enters with its largest beta and steps).
MAIN_SCHEMES = ("lora-exact", "lora-gd", "adaptive-rank", "mixture", "interpolation (lora)",
                "full", "interpolation (full)")
#: Dense schemes: ``d^2`` parameters whatever the rank.
DENSE = ("full", "interpolation (full)")


def scheme_style(label: str) -> dict[str, str]:
    """Style of a scheme label (``"subspace-init (beta=1, steps=30)"`` -> ``subspace-init``)."""
    for family in sorted(SCHEME_STYLE, key=len, reverse=True):
        if label.startswith(family):
            return SCHEME_STYLE[family]
    return {"color": OKABE_ITO["black"], "linestyle": "-", "marker": "."}


def _n_label(n: float) -> str:
    return "population" if math.isinf(n) else f"n = {int(n)}"


def _one_sigma(table: pd.DataFrame, sigma: float | None) -> pd.DataFrame:
    sigma = table["sigma"].min() if sigma is None else sigma
    rows = table[table["sigma"] == sigma]
    if rows.empty:
        raise ValueError(f"no rows with sigma={sigma}; the table has {sorted(table['sigma'].unique())}")
    return rows


def _subspace_label(table: pd.DataFrame) -> str | None:
    """The subspace-init label with the largest beta and steps, if any."""
    labels = sorted(s for s in table["scheme"].unique() if s.startswith("subspace-init"))
    if not labels:
        return None
    rows = table[table["scheme"].isin(labels)]
    best = rows.sort_values(["beta", "steps"]).iloc[-1]
    return best["scheme"]


def crossing_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (sigma, n, scheme) of the SR rows: median crossing budget and seeds that cross.

    Returns
    -------
    DataFrame
        Columns ``sigma, n, scheme, median_budget`` (NaN if no seed crosses), ``crossed``,
        ``seeds``.
    """
    _require(table, [*COLUMNS, "crossing_budget"], "schemes")
    per_seed = (table[table["base"] == "SR"]
                .groupby(["sigma", "n", "scheme", "seed"])["crossing_budget"].first()
                .reset_index())
    return (per_seed.groupby(["sigma", "n", "scheme"])["crossing_budget"]
            .agg(median_budget="median", crossed="count", seeds="size").reset_index())


def _line(ax, rows: pd.DataFrame, x: str, label: str) -> None:
    """Mean and min-max band over seeds of the excess loss against ``x``."""
    stats = rows.groupby(x)["excess_loss"].agg(["mean", "min", "max"]).sort_index()
    style = scheme_style(label)
    ax.plot(stats.index, np.maximum(stats["mean"], LOG_FLOOR), color=style["color"],
            linestyle=style["linestyle"], marker=style["marker"], markersize=5, label=label)
    if len(stats) > 1:
        ax.fill_between(stats.index, np.maximum(stats["min"], LOG_FLOOR),
                        np.maximum(stats["max"], LOG_FLOOR), color=style["color"], alpha=0.12,
                        linewidth=0)


def crossing_lines(summary: pd.DataFrame, schemes: list[str]) -> list[str]:
    """One line per ``n``: the schemes grouped by the median budget at which they cross."""
    lines = []
    for n, rows in summary[summary["scheme"].isin(schemes)].groupby("n", sort=True):
        groups: dict[str, list[str]] = {}
        for r in rows.itertuples():
            key = "never" if r.crossed == 0 else f"{r.median_budget:.0f} ({r.crossed}/{r.seeds})"
            groups.setdefault(key, []).append(r.scheme)
        lines.append(f"{_n_label(n)}: " + "; ".join(f"{key}: {', '.join(names)}"
                                                  for key, names in groups.items()))
    return lines


def plot_schemes_budget(table: pd.DataFrame, sigma: float | None = None):
    """Excess loss on the new task against the parameter budget, per base and ``n``.

    Parameters
    ----------
    table : DataFrame
        The ``schemes`` table.
    sigma : float, optional
        Noise level shown (default: the smallest in the table).

    Returns
    -------
    matplotlib.figure.Figure
        Rows: SR, LoRA-ML; columns: the smallest and largest ``n`` and the population (when
        present). The dashed line is the LoRA-ML base's exact rank-k loss; the dotted line
        marks ``2 d k (T + 1)``. The text under the panels gives, per ``n``, the median budget
        at which each scheme from SR first goes below the dashed line (over the seeds that
        do; "never" when none does within the budgets run).
    """
    import matplotlib.pyplot as plt

    _require(table, [*COLUMNS, "target_loss", "crossing_budget"], "schemes")
    rows = _one_sigma(table, sigma)
    finite = sorted(n for n in rows["n"].unique() if np.isfinite(n))
    ns = list(dict.fromkeys([*finite[:1], *finite[-1:], *(n for n in rows["n"].unique()
                                                          if math.isinf(n))]))
    subspace = _subspace_label(rows)
    shown = [*MAIN_SCHEMES, *([subspace] if subspace else [])]
    d, k, T = (int(rows[c].iloc[0]) for c in ("d", "k", "T"))
    summary = crossing_summary(rows)
    with house_style():
        fig = plt.figure(figsize=(4.3 * len(ns), 8.6), layout="constrained")
        grid = fig.add_gridspec(3, len(ns), height_ratios=[1.0, 1.0, 0.3])
        axes = np.array([[fig.add_subplot(grid[i, j]) for j in range(len(ns))]
                         for i in range(2)])
        for i, base in enumerate(BASES):
            for j, n in enumerate(ns):
                ax = axes[i, j]
                sub = rows[(rows["base"] == base) & (rows["n"] == n)]
                for label in shown:
                    part = sub[sub["scheme"] == label]
                    if not part.empty:
                        _line(ax, part, "budget", label)
                target = rows[rows["n"] == n]["target_loss"].mean()
                ax.axhline(max(target, LOG_FLOOR), color=REFERENCE_COLOR, linestyle="--",
                           linewidth=1.2, label=f"LoRA-ML base, exact rank {k}")
                ax.axvline(2 * d * k * (T + 1), color=REFERENCE_COLOR, linestyle=":",
                           linewidth=1.0)
                ax.set_yscale("log")
                ax.set_title(f"{base} base, {_n_label(n)}")
                if j == 0:
                    ax.set_ylabel("excess loss on the new task")
                if i == 1:
                    ax.set_xlabel("trainable parameters (rank-r LoRA: 2dr)")
        note = fig.add_subplot(grid[2, :])
        note.axis("off")
        note.text(0.0, 1.0, "From SR, first budget below the dashed line (median over the seeds "
                  "that cross):\n" + "\n".join(crossing_lines(summary[summary["n"].isin(ns)],
                                                              shown)),
                  transform=note.transAxes, ha="left", va="top", fontsize=7.5)
        handles, labels = axes[1, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=4)
        fig.suptitle(f"Adaptation schemes at equal parameter budget (d={d}, k={k}, T={T}, "
                     f"sigma={rows['sigma'].iloc[0]:g}; mean and min-max over seeds)\n"
                     f"dotted: 2dk(T+1) = {2 * d * k * (T + 1)}, below which no factorised "
                     "scheme from SR reaches the new task")
    return fig


def _at_rank(rows: pd.DataFrame, rank: int, d: int) -> pd.DataFrame:
    """Rows whose budget pays for rank ``rank`` (``floor(budget / 2d) = rank``) or is dense."""
    return rows[(rows["budget"] // (2 * d) == rank) | rows["scheme"].isin(DENSE)]


def plot_schemes_n(table: pd.DataFrame):
    """Excess loss against ``n`` at the budget of rank ``k (T + 1)`` (dense schemes: ``d^2``).

    Returns
    -------
    matplotlib.figure.Figure
        Rows: noise levels; columns: SR, LoRA-ML. Log-log; the dashed line is the LoRA-ML
        base's exact rank-k loss at each ``n``.
    """
    import matplotlib.pyplot as plt

    _require(table, [*COLUMNS, "target_loss"], "schemes")
    finite = table[np.isfinite(table["n"])]
    sigmas = sorted(finite["sigma"].unique())
    d, k, T = (int(table[c].iloc[0]) for c in ("d", "k", "T"))
    rank = k * (T + 1)
    with house_style():
        fig, axes = plt.subplots(len(sigmas), 2, figsize=(9.0, 3.4 * len(sigmas) + 0.8),
                                 squeeze=False, layout="constrained")
        for i, sigma in enumerate(sigmas):
            rows = _at_rank(finite[finite["sigma"] == sigma], rank, d)
            subspace = _subspace_label(rows)
            for j, base in enumerate(BASES):
                ax = axes[i, j]
                sub = rows[rows["base"] == base]
                for label in [*MAIN_SCHEMES, *([subspace] if subspace else [])]:
                    part = sub[sub["scheme"] == label]
                    if not part.empty:
                        _line(ax, part, "n", label)
                target = finite[finite["sigma"] == sigma].groupby("n")["target_loss"].mean()
                ax.plot(target.index, np.maximum(target, LOG_FLOOR), color=REFERENCE_COLOR,
                        linestyle="--", linewidth=1.2, label=f"LoRA-ML base, exact rank {k}")
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_title(f"{base} base, sigma = {sigma:g}")
                ax.set_xlabel("fine-tuning samples n")
                if j == 0:
                    ax.set_ylabel("excess loss on the new task")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=4)
        fig.suptitle(f"Excess loss against n at {2 * d * rank} parameters (rank k(T+1) = {rank};"
                     f" dense schemes {d * d}), d={d}, k={k}, T={T}")
    return fig


def plot_schemes_forgetting(table: pd.DataFrame, sigma: float | None = None):
    """Forgetting (mean increase of the retraining tasks' loss) against the new task's loss.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per base, at the largest finite ``n`` and the budget of rank ``k (T + 1)``;
        mean over seeds. Subspace-constrained initialisations are joined across ``beta`` for
        each number of gradient steps (the annotation gives beta).
    """
    import matplotlib.pyplot as plt

    _require(table, [*COLUMNS, "forgetting", "beta", "steps"], "schemes")
    rows = _one_sigma(table, sigma)
    n = max(v for v in rows["n"].unique() if np.isfinite(v))
    d, k, T = (int(rows[c].iloc[0]) for c in ("d", "k", "T"))
    rows = _at_rank(rows[(rows["n"] == n) & ~rows["scheme"].str.startswith("perturbation")],
                    k * (T + 1), d)
    means = rows.groupby(["base", "scheme"])[["excess_loss", "forgetting", "beta", "steps"]].mean()
    markers = ["s", "D", "^", "v", "P", "X"]
    with house_style():
        fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.8), layout="constrained")
        for ax, base in zip(axes, BASES):
            part = means.loc[base] if base in means.index.get_level_values(0) else means.iloc[:0]
            sub = part[part.index.str.startswith("subspace-init")]
            for m, (steps, group) in enumerate(sub.groupby("steps")):
                group = group.sort_values("beta")
                style = scheme_style("subspace-init")
                ax.plot(np.maximum(group["excess_loss"], LOG_FLOOR), group["forgetting"],
                        color=style["color"], marker=markers[m % len(markers)],
                        linestyle=style["linestyle"],
                        label=f"subspace-init, {int(steps)} steps (beta 0 -> 1)")
                for _, row in group.iterrows():
                    ax.annotate(f"{row['beta']:g}", (max(row["excess_loss"], LOG_FLOOR),
                                                     row["forgetting"]), fontsize=6,
                                xytext=(3, 3), textcoords="offset points")
            for label, row in part[~part.index.str.startswith("subspace-init")].iterrows():
                style = scheme_style(label)
                ax.plot([max(row["excess_loss"], LOG_FLOOR)], [row["forgetting"]],
                        color=style["color"], marker=style["marker"], linestyle="none",
                        markersize=7, label=label)
            ax.set_xscale("log")
            ax.set_xlabel("excess loss on the new task (fit)")
            ax.set_ylabel("forgetting (retraining tasks'\nmean loss increase)")
            ax.set_title(f"{base} base")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=3)
        fig.suptitle(f"Fit against forgetting at rank k(T+1) = {k * (T + 1)} ({_n_label(n)}, "
                     f"sigma={rows['sigma'].iloc[0] if len(rows) else float('nan'):g}; "
                     "mean over seeds)")
    return fig


def plot_schemes_perturbation(table: pd.DataFrame):
    """Harmful-task loss gained against new-task loss lost, random and optimised perturbations.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per base; one point per (seed, n, noise level, budget).
    """
    import matplotlib.pyplot as plt

    _require(table, [*COLUMNS, "harmful_gain", "task_loss_lost"], "schemes")
    rows = table[table["scheme"].str.startswith("perturbation")]
    with house_style():
        fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8), sharey=True, layout="constrained")
        for ax, base in zip(axes, BASES):
            sub = rows[rows["base"] == base]
            for label, part in sub.groupby("scheme"):
                optimised = "optimised" in label
                color = OKABE_ITO["vermillion"] if optimised else OKABE_ITO["blue"]
                ax.scatter(part["task_loss_lost"], part["harmful_gain"], s=18, label=label,
                           marker="o" if optimised else "x", color=color, alpha=0.8)
                median = part[["task_loss_lost", "harmful_gain"]].median()
                ax.annotate(f"median gain {median['harmful_gain']:.3g}",
                            (median["task_loss_lost"], median["harmful_gain"]), fontsize=7,
                            xytext=(6, -10 if optimised else 8), textcoords="offset points")
            ax.set_xlabel("new-task loss lost (population)")
            ax.set_title(f"{base} base")
        axes[0].set_ylabel("harmful-task loss gained")
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=2)
        fig.suptitle("Post-fine-tuning perturbations of equal norm: optimised against random")
    return fig
