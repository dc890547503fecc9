"""Figures of the synthetic experiments, each drawn from a result table alone.

Every function takes the tidy table an experiment wrote (see ``lowrank_theory.simulations.experiments``) and
returns a matplotlib Figure; none reruns a simulation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lowrank_theory.figures.style import (
    OKABE_ITO,
    REFERENCE_COLOR,
    SEQUENTIAL_CMAP,
    house_style,
    method_style,
)
from lowrank_theory.simulations.configs import RECOVERED, VARY_DEFAULTS, VARY_VALUES

__all__ = [
    "LOG_FLOOR",
    "LANDSCAPE_FLOOR",
    "VARY_QUANTITIES",
    "vary_axes",
    "vary_panel_rows",
    "plot_vary",
    "plot_vary_quirks",
    "kt_equals_d_steps",
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


#: The two measures of the vary table (axis labels): the paper's plotted quantity and the
#: population excess loss.
VARY_QUANTITIES: dict[str, str] = {
    "insample_error": "paper's quantity\nsum_i |(W - W*) x_i|^2",
    "test_loss": "population excess\n|W - W*|_F^2",
}
#: What each quantity is, for figure titles.
_QUANTITY_TITLE = {
    "insample_error": "paper's quantity: the noise-free error summed over the n fine-tuning inputs",
    "test_loss": "population excess loss on the new task",
}
#: Rows of the quirks figure: (authors_quirks, methods, label).
_QUIRK_ROWS = (
    (False, ("SR", "LoRA-ML"), "As stated: noise sd sigma, SR = pooled least squares"),
    (True, ("SR", "LoRA-ML"), "The authors' noise (sd sigma^2), SR = pooled least squares"),
    (True, ("SR (authors)", "LoRA-ML"), "The authors' noise and SR baseline "
                                        "(the setting of the paper's figures)"),
)


def vary_axes(table: pd.DataFrame) -> tuple[dict[str, tuple], dict[str, int]]:
    """The values of each vary parameter to draw, and the point the other panels hold it at.

    On the paper's grid these are ``VARY_VALUES`` and ``VARY_DEFAULTS``. Otherwise (a sweep
    file's own grid, ``d = 50`` say) the values are those of the table and the point is the
    paper's default where the table has it, else the parameter's smallest value.
    """
    present = {p: tuple(sorted(table[p].unique().tolist())) for p in VARY_VALUES}
    values = {p: VARY_VALUES[p] if set(VARY_VALUES[p]) <= set(present[p]) else present[p]
              for p in VARY_VALUES}
    defaults = {p: VARY_DEFAULTS[p] if VARY_DEFAULTS[p] in present[p] else present[p][0]
                for p in VARY_VALUES}
    return values, defaults


def vary_panel_rows(table: pd.DataFrame, param: str, value: int,
                    defaults: dict[str, int] | None = None,
                    authors_quirks: bool = False) -> pd.DataFrame:
    """Rows of the vary panel where ``param = value`` and the other parameters at ``defaults``.

    ``defaults`` is the table's own point (:func:`vary_axes`; the paper's ``VARY_DEFAULTS`` on
    its grid) unless given. Only rows with the given ``authors_quirks`` are kept (when the
    table has that column), and the panel is cut at its sweep's fine-tuning horizon: the
    smallest ``ft_steps`` of the configurations of the sweep (the default point runs the
    longest of its sweeps, :func:`lowrank_theory.simulations.configs.vary_configs`, and each panel shows its
    own sweep's count).
    """
    values, table_defaults = vary_axes(table)
    defaults = table_defaults if defaults is None else defaults

    def panel(param_values):
        mask = table[param].isin(param_values)
        for other, default in defaults.items():
            if other != param:
                mask &= table[other] == default
        if "authors_quirks" in table:
            mask &= table["authors_quirks"].astype(bool) == authors_quirks
        return mask

    rows = table[panel([value])]
    if "ft_steps" in rows and not rows.empty:
        rows = rows[rows["iteration"] <= table.loc[panel(values[param]), "ft_steps"].min()]
    return rows


def _draw_vary_panel(ax, rows: pd.DataFrame, title: str, quantity: str = "test_loss",
                     methods: tuple[str, ...] = ("SR", "LoRA-ML")) -> None:
    if rows.empty:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    for method in methods:
        sub = rows[rows["method"] == method]
        if not sub.empty:
            _band(ax, sub, "iteration", quantity, method)
    ax.set_yscale("log")
    ax.set_title(title)


def _check_quantities(quantities: tuple[str, ...]) -> None:
    unknown = [q for q in quantities if q not in VARY_QUANTITIES]
    if unknown or not quantities:
        raise ValueError(f"quantities must be a non-empty tuple among {list(VARY_QUANTITIES)}, "
                         f"got {quantities!r}")


def _legend(fig, axes) -> None:
    """One legend under the figure, with every method drawn in any panel."""
    entries = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center",
                   ncols=len(entries))


def plot_vary(table: pd.DataFrame, params: tuple[str, ...] | None = None,
              quantities: tuple[str, ...] = ("test_loss",)):
    """New-task error against fine-tuning iteration, one row of panels per parameter and quantity.

    Parameters
    ----------
    table : DataFrame
        The ``vary`` table (columns ``d, T, N, n, k, method, seed, iteration`` and the
        quantities).
    params : tuple of str, optional
        Which parameters to show; default: those that take several values in the table (the
        paper's set ``d, T, N, n, k`` on its grid). Each row has a panel per value of the
        table, the other parameters at :func:`vary_axes`' point.
    quantities : tuple of str
        ``"test_loss"`` (population excess loss ``||W - W*||_F^2``) and/or
        ``"insample_error"`` (the paper's plotted quantity, the noise-free error summed over
        the ``n`` fine-tuning inputs, about ``n`` times the first).

    Returns
    -------
    matplotlib.figure.Figure
        Rows are (parameter, quantity) pairs; panels share the y axis within a row; mean over
        seeds with a min-max band; runs with ``authors_quirks`` are left out
        (:func:`plot_vary_quirks` shows them).
    """
    import matplotlib.pyplot as plt

    _check_quantities(quantities)
    _require(table, ["method", "seed", "iteration", *quantities, *VARY_DEFAULTS], "vary")
    values, defaults = vary_axes(table)
    if params is None:
        params = tuple(p for p in VARY_VALUES if len(values[p]) > 1) or (next(iter(VARY_VALUES)),)
    unknown = [p for p in params if p not in VARY_VALUES]
    if unknown:
        raise ValueError(f"params must be among {list(VARY_VALUES)}, got {unknown}")
    rows_spec = [(p, q) for p in params for q in quantities]
    with house_style():
        ncols = max(len(values[p]) for p in params)
        fig, axes = plt.subplots(len(rows_spec), ncols,
                                 figsize=(3.4 * ncols, 2.6 * len(rows_spec)),
                                 squeeze=False, sharey="row", layout="constrained")
        for row, (param, quantity) in enumerate(rows_spec):
            others = ", ".join(f"{p}={v}" for p, v in defaults.items() if p != param)
            for col in range(ncols):
                ax = axes[row, col]
                if col >= len(values[param]):
                    ax.set_visible(False)
                    continue
                value = values[param][col]
                rows = vary_panel_rows(table, param, value, defaults)
                _draw_vary_panel(ax, rows, f"{param} = {value}" + ("" if col else f"  ({others})"),
                                 quantity)
                if col == 0:
                    ax.set_ylabel(VARY_QUANTITIES[quantity])
                if row == len(rows_spec) - 1:
                    ax.set_xlabel("fine-tuning iteration")
        _legend(fig, axes)
        which = "varying " + ", ".join(params)
        fig.suptitle("Fine-tuning on an unseen task after LoRA-ML or SR retraining\n"
                     f"({which}; mean and min-max band over seeds)\n"
                     + "\n".join(_QUANTITY_TITLE[q] for q in quantities))
    return fig


def plot_vary_quirks(table: pd.DataFrame, param: str = "T", quantity: str = "insample_error"):
    """What the authors' two quirks change: one row per setting, one column per value.

    Rows: the model as stated (noise standard deviation ``sigma``, SR by pooled least
    squares); the authors' noise (standard deviation ``sigma^2``) with the same SR; and both
    quirks, the noise and the authors' SR baseline (the setting of the paper's figures).
    The first row comes from runs without ``authors_quirks``, the other two from the runs
    with it (which report both SR baselines on the same samples).

    Parameters
    ----------
    table : DataFrame
        The ``vary`` table.
    param : str
        The swept parameter (the T sweep shows the T = 2 gap of the paper's figure).
    quantity : str
        ``"insample_error"`` (the paper's, default) or ``"test_loss"``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    _check_quantities((quantity,))
    _require(table, ["method", "seed", "iteration", quantity, *VARY_DEFAULTS], "vary")
    if param not in VARY_VALUES:
        raise ValueError(f"param must be one of {list(VARY_VALUES)}, got {param!r}")
    values = vary_axes(table)[0][param]
    with house_style():
        fig = plt.figure(figsize=(3.4 * len(values), 2.9 * len(_QUIRK_ROWS)),
                         layout="constrained")
        subfigs = fig.subfigures(len(_QUIRK_ROWS), 1)
        axes = np.array([sub.subplots(1, len(values)) for sub in subfigs])
        for row, (quirks, methods, label) in enumerate(_QUIRK_ROWS):
            subfigs[row].suptitle(label)
            for col, value in enumerate(values):
                ax = axes[row, col]
                rows = vary_panel_rows(table, param, value, authors_quirks=quirks)
                _draw_vary_panel(ax, rows, f"{param} = {value}", quantity, methods)
                if col == 0:
                    ax.set_ylabel(VARY_QUANTITIES[quantity])
                if row == len(_QUIRK_ROWS) - 1:
                    ax.set_xlabel("fine-tuning iteration")
        # One y range for the whole figure, so the rows compare at a glance.
        limits = np.array([ax.get_ylim() for ax in axes.flat])
        for ax in axes.flat:
            ax.set_ylim(limits[:, 0].min(), limits[:, 1].max())
        _legend(fig, axes)
        fig.suptitle("What the authors' noise (sd sigma^2) and SR baseline change, one at a "
                     f"time\n{_QUANTITY_TITLE[quantity]}; mean and min-max band over seeds",
                     fontsize=11)
    return fig


def kt_equals_d_steps(Ts: np.ndarray, ratios: np.ndarray) -> tuple[list[float], list[float]]:
    """The boundary ``kT = d`` on the phase grid, as a staircase in cell coordinates.

    In row ``i`` (rank ratio ``k/d = ratios[i]``) the cells with ``kT <= d``, i.e.
    ``T <= d/k``, lie left of the boundary; it runs along the right edge of the last such
    column of the (sorted) ``Ts`` (``-0.5`` when there is none). Returns the vertices
    ``(xs, ys)`` of a vertical segment per row joined by horizontal steps.

    Examples
    --------
    >>> kt_equals_d_steps(np.array([1, 2, 3, 4]), np.array([0.25, 0.5]))
    ([3.5, 3.5, 1.5, 1.5], [-0.5, 0.5, 0.5, 1.5])
    """
    Ts = np.asarray(Ts, dtype=float)
    xs, ys = [], []
    for i, ratio in enumerate(ratios):
        # A small slack so that T = d/k exactly (kT = d) counts as independent-possible.
        x = float(np.count_nonzero(Ts <= 1.0 / ratio + 1e-9)) - 0.5
        xs += [x, x]
        ys += [i - 0.5, i + 0.5]
    return xs, ys


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
        # kT <= d left of the line: the kT offset columns can be independent (the sufficient
        # condition of Theorem 3); cells right of it that recover show it is not necessary.
        xs, ys = kt_equals_d_steps(Ts, ratios)
        ax.plot(xs, ys, color=OKABE_ITO["reddish_purple"], linewidth=2.0, linestyle="--",
                label="kT = d (kT <= d to its left)")
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
        ax.set_xlabel("retraining tasks T")
        ax.set_ylabel("rank ratio k/d")
        d_values = sorted(table["d"].unique())
        ax.set_title(f"LoRA-ML recovery of A* (population, d={', '.join(map(str, d_values))})\n"
                     f"median ||A^-A*||/||A*|| and share of seeds below {RECOVERED:.0e}")
        fig.colorbar(image, ax=ax, label="median relative ||A^ - A*||_F")
    return fig


def _config_groups(table: pd.DataFrame, keys: tuple[str, ...]) -> list[tuple[dict, pd.DataFrame]]:
    """The table split by the distinct values of ``keys`` (those present), in sorted order.

    A sweep file may run several configs into one table; each gets its own panel rather than
    being pooled under the first config's label.
    """
    present = [k for k in keys if k in table.columns]
    return [(dict(zip(present, values if isinstance(values, tuple) else (values,))), rows)
            for values, rows in table.groupby(present, sort=True)]


def _label(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


def plot_rate(table: pd.DataFrame):
    """Post-adaptation excess loss against ``n`` (log-log) with the ``k d sigma^2 / n`` line.

    Parameters
    ----------
    table : DataFrame
        The ``rate`` table (columns ``d, k, sigma, n, method, seed, excess_loss``; ``T`` and
        ``N`` if present). Several configs (a sweep file's grid) give one panel each.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    _require(table, ["d", "k", "sigma", "n", "method", "seed", "excess_loss"], "rate")
    groups = _config_groups(table, ("d", "k", "sigma", "T", "N"))
    ncols = min(len(groups), 3)
    nrows = -(-len(groups) // ncols)
    with house_style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False,
                                 layout="constrained")
        for ax, (config, rows) in zip(axes.flat, groups):
            for method in ("SR", "LoRA-ML", "oracle"):
                sub = rows[rows["method"] == method]
                if not sub.empty:
                    _band(ax, sub, "n", "excess_loss", method, markers=True)
            n = np.sort(rows["n"].unique()).astype(float)
            d, k, sigma = config["d"], config["k"], config["sigma"]
            ax.plot(n, k * d * sigma**2 / n, color=REFERENCE_COLOR, linestyle="-.",
                    linewidth=1.2, label=r"reference $k d \sigma^2 / n$")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("fine-tuning samples n")
            ax.set_ylabel("excess test loss after fine-tuning")
            ax.set_title(f"Excess loss after rank-{k} fine-tuning on n samples\n"
                         f"({_label(config)}; mean and min-max over seeds)")
            ax.legend(loc="best")
        for ax in axes.flat[len(groups):]:
            ax.set_visible(False)
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
        One row per T (per config, when a sweep file also varies d or k); log-spaced bins
        shared by the rows, values below ``LANDSCAPE_FLOOR`` drawn at it.
    """
    import matplotlib.pyplot as plt

    _require(table, ["T", "objective", "base_error"], "landscape")
    # One row per config: T, and d and k when a sweep file varies them.
    groups = _config_groups(table, ("d", "k", "T"))
    shared = {k: table[k].iloc[0] for k in ("d", "k") if k in table and table[k].nunique() == 1}
    # Every row shares each column's bins, so T = 2 and T = 3 compare at a glance.
    bins = {}
    for column, _ in (("objective", None), ("base_error", None)):
        values = np.maximum(table[column].to_numpy(dtype=float), LANDSCAPE_FLOOR)
        low = np.floor(np.log10(values.min()))
        high = max(np.ceil(np.log10(values.max())), low + 1)
        bins[column] = np.logspace(low, high, 40)
    columns = (("objective", "final excess objective F(A^, U^)"),
               ("base_error", "relative ||A^ - A*||_F"))
    with house_style():
        fig, axes = plt.subplots(len(groups), 2, figsize=(8.0, 2.6 * len(groups)), squeeze=False,
                                 layout="constrained")
        for row, (config, sub) in enumerate(groups):
            label = ", ".join(f"{k} = {v}" for k, v in config.items() if k not in shared)
            for col, (column, xlabel) in enumerate(columns):
                ax = axes[row, col]
                values = np.maximum(sub[column].to_numpy(dtype=float), LANDSCAPE_FLOOR)
                ax.hist(values, bins=bins[column], color=method_style("LoRA-ML")["color"],
                        alpha=0.85)
                ax.set_xscale("log")
                ax.set_xlabel(xlabel)
                ax.set_ylabel("random starts")
                ax.set_title(f"{label}: {len(sub)} starts, median {np.median(sub[column]):.1e}")
        fixed = "".join(f", {k}={v}" for k, v in shared.items())
        fig.suptitle(f"LoRA-ML (population{fixed}) from random starts:\n"
                     "final objective and distance of the base to A*")
    return fig
