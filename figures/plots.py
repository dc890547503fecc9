"""Figures of the synthetic experiments, each drawn from a result table alone.

Every function takes the tidy table an experiment wrote (see ``simulations.experiments``) and
returns a matplotlib Figure; none reruns a simulation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from figures.style import REFERENCE_COLOR, SEQUENTIAL_CMAP, house_style, method_style
from simulations.configs import RECOVERED, VARY_DEFAULTS, VARY_VALUES

__all__ = [
    "LOG_FLOOR",
    "LANDSCAPE_FLOOR",
    "vary_panel_rows",
    "plot_vary",
    "plot_phase",
    "plot_rate",
    "plot_landscape",
]

#: Values below this are drawn at this value on log axes (an exact zero has no logarithm).
LOG_FLOOR = 1e-12
#: The landscape's objectives reach double-precision zero (~1e-24 for O(100) losses), so its
#: histograms need a lower floor.
LANDSCAPE_FLOOR = 1e-30

#: Axis labels of the vary parameters.
_PARAM_LABEL = {
    "d": "dimension d",
    "T": "retraining tasks T",
    "N": "samples per retraining task N",
    "n": "fine-tuning samples n",
    "k": "rank k",
}


def _require(table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the {what} table lacks columns {missing}; was it written by the "
                         f"{what} experiment?")


def _band(ax, rows: pd.DataFrame, x: str, y: str, method: str, *, markers: bool = False) -> None:
    """Mean line and min-max band over seeds of ``y`` against ``x`` for one method."""
    stats = rows.groupby(x)[y].agg(["mean", "min", "max"]).sort_index()
    style = method_style(method)
    n_seeds = rows["seed"].nunique()
    ax.plot(stats.index, np.maximum(stats["mean"], LOG_FLOOR), color=style["color"],
            linestyle=style["linestyle"], marker=style["marker"] if markers else None,
            markersize=4, label=f"{method} (mean of {n_seeds})")
    ax.fill_between(stats.index, np.maximum(stats["min"], LOG_FLOOR),
                    np.maximum(stats["max"], LOG_FLOOR), color=style["color"], alpha=0.2,
                    linewidth=0)


def vary_panel_rows(table: pd.DataFrame, param: str, value: int) -> pd.DataFrame:
    """Rows of the vary panel where ``param = value`` and every other parameter is default."""
    mask = table[param] == value
    for other, default in VARY_DEFAULTS.items():
        if other != param:
            mask &= table[other] == default
    return table[mask]


def _draw_vary_panel(ax, rows: pd.DataFrame, title: str) -> None:
    if rows.empty:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    for method in ("SR", "LoRA-ML"):
        sub = rows[rows["method"] == method]
        if not sub.empty:
            _band(ax, sub, "iteration", "test_loss", method)
    ax.set_yscale("log")
    ax.set_title(title)


def plot_vary(table: pd.DataFrame, params: tuple[str, ...] = tuple(VARY_VALUES)):
    """Test-task excess loss against fine-tuning iteration, one row of panels per parameter.

    Parameters
    ----------
    table : DataFrame
        The ``vary`` table (columns ``d, T, N, n, k, method, seed, iteration, test_loss``).
    params : tuple of str
        Which parameters to show, one row each; the paper's set is ``d, T, N, n, k``.

    Returns
    -------
    matplotlib.figure.Figure
        Panels share the y axis within a row; mean over seeds with a min-max band.
    """
    import matplotlib.pyplot as plt

    _require(table, ["method", "seed", "iteration", "test_loss", *VARY_DEFAULTS], "vary")
    unknown = [p for p in params if p not in VARY_VALUES]
    if unknown:
        raise ValueError(f"params must be among {list(VARY_VALUES)}, got {unknown}")
    with house_style():
        ncols = max(len(VARY_VALUES[p]) for p in params)
        fig, axes = plt.subplots(len(params), ncols, figsize=(3.4 * ncols, 2.6 * len(params)),
                                 squeeze=False, sharey="row", layout="constrained")
        for row, param in enumerate(params):
            for col, value in enumerate(VARY_VALUES[param]):
                ax = axes[row, col]
                rows = vary_panel_rows(table, param, value)
                others = ", ".join(f"{p}={v}" for p, v in VARY_DEFAULTS.items() if p != param)
                _draw_vary_panel(ax, rows, f"{param} = {value}" + ("" if col else f"  ({others})"))
                if col == 0:
                    ax.set_ylabel("excess test loss")
                if row == len(params) - 1 or len(params) == 1:
                    ax.set_xlabel("fine-tuning iteration")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=2)
        which = "varying " + ", ".join(params)
        fig.suptitle("Fine-tuning on an unseen task after LoRA-ML or SR retraining\n"
                     f"({which}; mean and min-max band over seeds)")
    return fig


def plot_phase(table: pd.DataFrame):
    """Recovery phase diagram: median relative ``||A^ - A*||_F`` over ``T`` and ``k/d``.

    Parameters
    ----------
    table : DataFrame
        The ``phase`` table (columns ``d, T, k, seed, base_error``).

    Returns
    -------
    matplotlib.figure.Figure
        A heat map (log colour scale) annotated with the median and the success fraction
        (relative error below ``RECOVERED``) of each cell.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    _require(table, ["d", "T", "k", "seed", "base_error"], "phase")
    table = table.assign(k_over_d=table["k"] / table["d"])
    median = table.pivot_table(index="k_over_d", columns="T", values="base_error",
                               aggfunc="median").sort_index()
    success = table.assign(ok=table["base_error"] < RECOVERED).pivot_table(
        index="k_over_d", columns="T", values="ok", aggfunc="mean").reindex_like(median)
    Ts, ratios = median.columns.to_numpy(), median.index.to_numpy()
    values = np.maximum(median.to_numpy(dtype=float), LOG_FLOOR)
    with house_style():
        fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(Ts), 1.4 + 0.55 * len(ratios)),
                               layout="constrained")
        image = ax.imshow(values, origin="lower", aspect="auto", cmap=SEQUENTIAL_CMAP,
                          norm=LogNorm(vmin=max(values.min(), LOG_FLOOR), vmax=max(values.max(), 1.0)))
        for i in range(len(ratios)):
            for j in range(len(Ts)):
                v = median.to_numpy()[i, j]
                if np.isnan(v):
                    continue
                dark = values[i, j] < np.sqrt(image.norm.vmin * image.norm.vmax)
                ax.text(j, i, f"{v:.0e}\n{success.to_numpy()[i, j]:.0%}", ha="center",
                        va="center", fontsize=7, color="white" if dark else "black")
        ax.set_xticks(range(len(Ts)), [str(t) for t in Ts])
        ax.set_yticks(range(len(ratios)), [f"{r:.2g}" for r in ratios])
        ax.grid(False)
        ax.set_xlabel("retraining tasks T")
        ax.set_ylabel("rank ratio k/d")
        d_values = sorted(table["d"].unique())
        ax.set_title(f"LoRA-ML recovery of A* (population, d={', '.join(map(str, d_values))})\n"
                     f"median ||A^-A*||/||A*|| and share of seeds below {RECOVERED:.0e}")
        fig.colorbar(image, ax=ax, label="median relative ||A^ - A*||_F")
    return fig


def plot_rate(table: pd.DataFrame):
    """Post-adaptation excess loss against ``n`` (log-log) with the ``k d sigma^2 / n`` line.

    Parameters
    ----------
    table : DataFrame
        The ``rate`` table (columns ``d, k, sigma, n, method, seed, excess_loss``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    _require(table, ["d", "k", "sigma", "n", "method", "seed", "excess_loss"], "rate")
    with house_style():
        fig, ax = plt.subplots(figsize=(5.2, 3.8), layout="constrained")
        for method in ("SR", "LoRA-ML", "oracle"):
            sub = table[table["method"] == method]
            if not sub.empty:
                _band(ax, sub, "n", "excess_loss", method, markers=True)
        n = np.sort(table["n"].unique()).astype(float)
        (d,), (k,), (sigma,) = (table[c].unique() for c in ("d", "k", "sigma"))
        ax.plot(n, k * d * sigma**2 / n, color=REFERENCE_COLOR, linestyle="-.", linewidth=1.2,
                label=r"reference $k d \sigma^2 / n$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("fine-tuning samples n")
        ax.set_ylabel("excess test loss after fine-tuning")
        T = table["T"].iloc[0] if "T" in table else "?"
        N = table["N"].iloc[0] if "N" in table else "?"
        ax.set_title(f"Excess loss after rank-{k} fine-tuning on n samples\n"
                     f"(d={d}, T={T}, N={N}, sigma={sigma}; mean and min-max over seeds)")
        ax.legend(loc="best")
    return fig


def plot_landscape(table: pd.DataFrame):
    """Histograms over random starts of the final objective and of ``||A^ - A*||``, per ``T``.

    Parameters
    ----------
    table : DataFrame
        The ``landscape`` table (columns ``T, objective, base_error``; one row per start).

    Returns
    -------
    matplotlib.figure.Figure
        One row per T; log-spaced bins shared by the rows, values below
        ``LANDSCAPE_FLOOR`` drawn at it.
    """
    import matplotlib.pyplot as plt

    _require(table, ["T", "objective", "base_error"], "landscape")
    Ts = sorted(table["T"].unique())
    # Both rows share each column's bins, so T = 2 and T = 3 compare at a glance.
    bins = {}
    for column, _ in (("objective", None), ("base_error", None)):
        values = np.maximum(table[column].to_numpy(dtype=float), LANDSCAPE_FLOOR)
        low = np.floor(np.log10(values.min()))
        high = max(np.ceil(np.log10(values.max())), low + 1)
        bins[column] = np.logspace(low, high, 40)
    columns = (("objective", "final excess objective F(A^, U^)"),
               ("base_error", "relative ||A^ - A*||_F"))
    with house_style():
        fig, axes = plt.subplots(len(Ts), 2, figsize=(8.0, 2.6 * len(Ts)), squeeze=False,
                                 layout="constrained")
        for row, T in enumerate(Ts):
            sub = table[table["T"] == T]
            for col, (column, label) in enumerate(columns):
                ax = axes[row, col]
                values = np.maximum(sub[column].to_numpy(dtype=float), LANDSCAPE_FLOOR)
                ax.hist(values, bins=bins[column], color=method_style("LoRA-ML")["color"],
                        alpha=0.85)
                ax.set_xscale("log")
                ax.set_xlabel(label)
                ax.set_ylabel("random starts")
                ax.set_title(f"T = {T}: {len(sub)} starts, median {np.median(sub[column]):.1e}")
        d, k = table["d"].iloc[0], table["k"].iloc[0]
        fig.suptitle(f"LoRA-ML (population, d={d}, k={k}) from random starts:\n"
                     "final objective and distance of the base to A*")
    return fig
