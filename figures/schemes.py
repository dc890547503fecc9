"""Figures of the ``schemes`` experiment, drawn from its table alone.

Four figures: excess loss against the parameter budget (with SR's catch-up budgets), excess
loss against ``n``, forgetting against fit for the preserving schemes, and the harmful-task
gain of post-fine-tuning perturbations against the new-task loss they cost.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from lowrank_theory.figures.bands import DEFAULT_BAND, band_caption, band_stats, check_band
from lowrank_theory.figures.facets import config_label, faceted, tag
from lowrank_theory.figures.plots import LOG_FLOOR, _require, wrap
from lowrank_theory.figures.style import OKABE_ITO, REFERENCE_COLOR, canvas, house_style

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


def _value(fig, value: int) -> str:
    """``" = 80"`` unless the figure is one facet block (where the value may differ by block)."""
    return "" if getattr(fig, "facet_keys", ()) else f" = {value}"


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


def _dodged(ax, rows: pd.DataFrame, x: str, label: str, slot: int, slots: int, band: str,
            *, log: bool = False) -> None:
    """Mean over seeds of the excess loss against ``x``, with its band as error bars.

    Schemes often coincide (from SR every exact factorised scheme has the same loss), so each
    is shifted sideways by its ``slot`` of ``slots``: coincident schemes stand side by side
    instead of hiding each other. The shift is a fraction of the spacing of ``x`` (a factor on
    log axes); the artists are tagged with their configs.
    """
    stats = band_stats(rows, x, "excess_loss", band, log=True, floor=LOG_FLOOR)
    xs = stats.index.to_numpy(dtype=float)
    style = scheme_style(label)
    finite = np.sort(np.unique(xs[np.isfinite(xs)]))
    offset = (slot - (slots - 1) / 2) / max(slots, 1)
    if log:
        step = np.diff(np.log(finite)).min() if len(finite) > 1 else 1.0
        xs = xs * np.exp(0.5 * step * offset)
    else:
        step = np.diff(finite).min() if len(finite) > 1 else 1.0
        xs = xs + 0.6 * step * offset
    mean = np.maximum(stats["mean"].to_numpy(), LOG_FLOOR)
    low = mean - np.maximum(stats["low"].to_numpy(), LOG_FLOOR)
    high = np.maximum(stats["high"].to_numpy(), LOG_FLOOR) - mean
    bars = ax.errorbar(xs, mean, yerr=[np.maximum(low, 0), np.maximum(high, 0)],
                       color=style["color"], linestyle=style["linestyle"], linewidth=1.1,
                       marker=style["marker"], markersize=4, capsize=1.5, elinewidth=0.8,
                       label=label)
    for artist in (*bars.lines[1], *bars.lines[2]):
        artist.set_alpha(0.5)  # the intervals stay readable behind the means
    for artist in bars.get_children():
        tag(artist, rows, x)


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


def _shown(rows: pd.DataFrame) -> list[str]:
    """The schemes of the budget and n figures present in ``rows``, in legend order."""
    subspace = _subspace_label(rows)
    present = set(rows["scheme"])
    return [s for s in (*MAIN_SCHEMES, *([subspace] if subspace else [])) if s in present]


def plot_schemes_budget(table: pd.DataFrame, sigma: float | None = None,
                        band: str = DEFAULT_BAND):
    """Excess loss on the new task against the parameter budget, per base and ``n``.

    Parameters
    ----------
    table : DataFrame
        The ``schemes`` table.
    sigma : float, optional
        Draw only this noise level (default: every one, a facet each).
    band : {"ci95", "minmax"}
        The error bars around the mean over seeds.

    Returns
    -------
    matplotlib.figure.Figure
        Rows: SR, LoRA-ML; columns: the smallest and largest ``n`` and the population (when
        present). Coincident schemes are shifted sideways so each stays visible. The dashed
        line is the LoRA-ML base's exact rank-k loss; the dotted line marks ``2 d k (T + 1)``.
        The text under the panels gives, per ``n``, the median budget at which each scheme
        from SR first goes below the dashed line (over the seeds that do; "never" when none
        does within the budgets run).
    """
    _require(table, [*COLUMNS, "target_loss", "crossing_budget"], "schemes")
    check_band(band)
    rows = table if sigma is None else _one_sigma(table, sigma)
    return faceted(_draw_budget, rows, ["base", "n", "scheme"], name="schemes_budget",
                   experiment="schemes", band=band)


def _draw_budget(rows: pd.DataFrame, *, band: str, fig=None):
    finite = sorted(n for n in rows["n"].unique() if np.isfinite(n))
    ns = list(dict.fromkeys([*finite[:1], *finite[-1:], *(n for n in rows["n"].unique()
                                                          if math.isinf(n))]))
    shown = _shown(rows)
    d, k, T = (int(rows[c].iloc[0]) for c in ("d", "k", "T"))
    width = max(3.4 * len(ns), 6.0)
    note = wrap("From SR, the first budget below the dashed line (median over the seeds that "
                "cross):\n" + "\n".join(crossing_lines(crossing_summary(
                    rows[rows["n"].isin(ns)]), shown)), width - 0.3, 8, indent="    ")
    note_height = 0.17 * (note.count("\n") + 1) + 0.1
    with house_style():
        fig = canvas(fig, (width, 6.4 + note_height + 1.2))
        grid = fig.add_gridspec(3, len(ns), height_ratios=[2.8, 2.8, note_height])
        axes = np.array([[fig.add_subplot(grid[i, j]) for j in range(len(ns))]
                         for i in range(2)])
        for i, base in enumerate(BASES):
            for j, n in enumerate(ns):
                ax = axes[i, j]
                sub = rows[(rows["base"] == base) & (rows["n"] == n)]
                for slot, label in enumerate(shown):
                    part = sub[sub["scheme"] == label]
                    if not part.empty:
                        _dodged(ax, part, "budget", label, slot, len(shown), band)
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
                    ax.set_xlabel("trainable parameters (rank r: 2dr)")
        text = fig.add_subplot(grid[2, :])
        text.axis("off")
        text.text(0.0, 1.0, note, transform=text.transAxes, ha="left", va="top", fontsize=8)
        handles, labels = axes[1, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=3)
        fixed = config_label(rows, ("d", "k", "T", "sigma"), fig)
        fig.suptitle(wrap(f"Adaptation schemes at equal parameter budget ({fixed}; "
                          f"{band_caption(band, rows['seed'].nunique(), log=True)})\n"
                          f"dotted: 2dk(T+1){_value(fig, 2 * d * k * (T + 1))}, below which no "
                          "factorised scheme from SR reaches the new task", width, 12))
    return fig


def _at_rank(rows: pd.DataFrame, rank: int, d: int) -> pd.DataFrame:
    """Rows whose budget pays for rank ``rank`` (``floor(budget / 2d) = rank``) or is dense."""
    return rows[(rows["budget"] // (2 * d) == rank) | rows["scheme"].isin(DENSE)]


def plot_schemes_n(table: pd.DataFrame, band: str = DEFAULT_BAND):
    """Excess loss against ``n`` at the budget of rank ``k (T + 1)`` (dense schemes: ``d^2``).

    Returns
    -------
    matplotlib.figure.Figure
        Rows: noise levels; columns: SR, LoRA-ML. Log-log, coincident schemes shifted
        sideways; the dashed line is the LoRA-ML base's exact rank-k loss at each ``n``.
    """
    _require(table, [*COLUMNS, "target_loss"], "schemes")
    check_band(band)
    finite = table[np.isfinite(table["n"])]
    if finite.empty:
        raise ValueError("the schemes table has no finite n (only the population)")
    return faceted(_draw_n, finite, ["sigma", "base", "scheme", "n"], name="schemes_n",
                   experiment="schemes", band=band)


def _draw_n(finite: pd.DataFrame, *, band: str, fig=None):
    sigmas = sorted(finite["sigma"].unique())
    d, k, T = (int(finite[c].iloc[0]) for c in ("d", "k", "T"))
    rank = k * (T + 1)
    with house_style():
        fig = canvas(fig, (9.0, 3.4 * len(sigmas) + 1.6))
        axes = fig.subplots(len(sigmas), 2, squeeze=False)
        for i, sigma in enumerate(sigmas):
            rows = _at_rank(finite[finite["sigma"] == sigma], rank, d)
            shown = _shown(rows)
            for j, base in enumerate(BASES):
                ax = axes[i, j]
                sub = rows[rows["base"] == base]
                for slot, label in enumerate(shown):
                    part = sub[sub["scheme"] == label]
                    if not part.empty:
                        _dodged(ax, part, "n", label, slot, len(shown), band, log=True)
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
        fig.legend(handles, labels, loc="outside lower center", ncols=3)
        fixed = config_label(finite, ("d", "k", "T"), fig)
        fig.suptitle(wrap(f"Excess loss against n at the budget of rank k(T+1)"
                          f"{_value(fig, rank)} (dense schemes: d^2{_value(fig, d * d)}), "
                          f"{fixed}; "
                          f"{band_caption(band, finite['seed'].nunique(), log=True)}", 9.0, 12))
    return fig


def plot_schemes_forgetting(table: pd.DataFrame, sigma: float | None = None,
                            band: str = DEFAULT_BAND):
    """Forgetting (mean increase of the retraining tasks' loss) against the new task's loss.

    Parameters
    ----------
    table : DataFrame
        The ``schemes`` table.
    sigma : float, optional
        Draw only this noise level (default: every one, a facet each).
    band : str
        Unused (each point is a mean over seeds); accepted so that every figure is drawn the
        same way.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per base, at the largest finite ``n`` and the budget of rank ``k (T + 1)``;
        mean over seeds. Subspace-constrained initialisations are joined across ``beta`` for
        each number of gradient steps (the points' labels give beta); the other schemes are
        points with their own marker.
    """
    _require(table, [*COLUMNS, "forgetting", "beta", "steps"], "schemes")
    check_band(band)
    rows = table if sigma is None else _one_sigma(table, sigma)
    rows = rows[np.isfinite(rows["n"]) & ~rows["scheme"].str.startswith("perturbation")]
    if rows.empty:
        raise ValueError("the schemes table has no finite n: forgetting is measured at one")
    return faceted(_draw_forgetting, rows, ["base", "scheme"], name="schemes_forgetting",
                   experiment="schemes")


def _draw_forgetting(rows: pd.DataFrame, fig=None):
    n = rows["n"].max()
    d, k, T = (int(rows[c].iloc[0]) for c in ("d", "k", "T"))
    rows = _at_rank(rows[rows["n"] == n], k * (T + 1), d)
    markers = ["s", "D", "^", "v", "P", "X"]
    with house_style():
        fig = canvas(fig, (9.0, 5.0))
        axes = fig.subplots(1, 2)
        for ax, base in zip(axes, BASES):
            part = rows[rows["base"] == base]
            subspace = part[part["scheme"].str.startswith("subspace-init")]
            for m, (steps, group) in enumerate(subspace.groupby("steps")):
                means = group.groupby("beta")[["excess_loss", "forgetting"]].mean()
                style = scheme_style("subspace-init")
                (line,) = ax.plot(np.maximum(means["excess_loss"], LOG_FLOOR), means["forgetting"],
                                  color=style["color"], marker=markers[m % len(markers)],
                                  linestyle=style["linestyle"],
                                  label=f"subspace-init, {int(steps)} steps (beta 0 -> 1)")
                tag(line, group)
                if m == 0:  # beta labels once: the other step counts share the betas
                    for beta, row in means.iterrows():
                        ax.annotate(f"beta={beta:g}", (max(row["excess_loss"], LOG_FLOOR),
                                                       row["forgetting"]), fontsize=8,
                                    xytext=(4, 4), textcoords="offset points",
                                    color=style["color"])
            others = part[~part["scheme"].str.startswith("subspace-init")]
            for label, group in others.groupby("scheme", sort=False):
                style = scheme_style(label)
                (point,) = ax.plot([max(group["excess_loss"].mean(), LOG_FLOOR)],
                                   [group["forgetting"].mean()], color=style["color"],
                                   marker=style["marker"], linestyle="none", markersize=8,
                                   markerfacecolor="none", markeredgewidth=1.6, label=label)
                tag(point, group)
            ax.set_xscale("log")
            ax.set_xlabel("excess loss on the new task (fit)")
            ax.set_title(f"{base} base, {_n_label(n)}")
        axes[0].set_ylabel("forgetting (retraining tasks'\nmean loss increase)")
        entries: dict[str, object] = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                entries.setdefault(label, handle)
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=3)
        fixed = config_label(rows, ("sigma", "d", "k", "T"), fig)
        fig.suptitle(wrap(f"Fit against forgetting at rank k(T+1){_value(fig, k * (T + 1))}, "
                          f"the largest n ({fixed + '; ' if fixed else ''}mean over "
                          f"{rows['seed'].nunique()} seeds)", 9.0, 12))
    return fig


def plot_schemes_perturbation(table: pd.DataFrame, band: str = DEFAULT_BAND):
    """Harmful-task loss gained against new-task loss lost, random and optimised perturbations.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per base; one point per (seed, n, budget) of a config, one facet per noise
        level (and any other swept field).
    """
    _require(table, [*COLUMNS, "harmful_gain", "task_loss_lost"], "schemes")
    check_band(band)
    rows = table[table["scheme"].str.startswith("perturbation")]
    if rows.empty:
        raise ValueError("the schemes table has no perturbation rows")
    return faceted(_draw_perturbation, rows, ["base", "scheme"], name="schemes_perturbation",
                   experiment="schemes")


def _draw_perturbation(rows: pd.DataFrame, fig=None):
    with house_style():
        fig = canvas(fig, (9.0, 4.2))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, base in zip(axes, BASES):
            sub = rows[rows["base"] == base]
            for label, part in sub.groupby("scheme"):
                optimised = "optimised" in label
                color = OKABE_ITO["vermillion"] if optimised else OKABE_ITO["blue"]
                tag(ax.scatter(part["task_loss_lost"], part["harmful_gain"], s=18, label=label,
                               marker="o" if optimised else "x", color=color, alpha=0.8), part)
                median = part[["task_loss_lost", "harmful_gain"]].median()
                ax.annotate(f"median gain {median['harmful_gain']:.3g}",
                            (median["task_loss_lost"], median["harmful_gain"]), fontsize=8,
                            xytext=(6, -10 if optimised else 8), textcoords="offset points")
            ax.set_xlabel("new-task loss lost (population)")
            ax.set_title(f"{base} base")
        axes[0].set_ylabel("harmful-task loss gained")
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=2)
        fixed = config_label(rows, ("sigma", "rho"), fig)
        fig.suptitle(wrap("Post-fine-tuning perturbations of equal norm: optimised against "
                          "random" + (f" ({fixed})" if fixed else ""), 9.0, 12))
    return fig
