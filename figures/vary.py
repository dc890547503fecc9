"""Figures of the ``vary`` experiment: fine-tuning curves over the paper's one-at-a-time grid.

Drawn from the table alone (see :func:`lowrank_theory.simulations.vary.run_vary`), true to its
grid (:mod:`lowrank_theory.figures.facets`); bands as in :mod:`lowrank_theory.figures.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from lowrank_theory.figures.bands import DEFAULT_BAND, band_caption, check_band
from lowrank_theory.figures.facets import faceted
from lowrank_theory.figures.plots import (
    _curve_label,
    _legend,
    _require,
    _seeds,
    draw_band,
    star_layout,
    wrap,
)
from lowrank_theory.figures.style import (
    canvas,
    house_style,
    method_style,
)
from lowrank_theory.simulations.configs import VARY_DEFAULTS, VARY_VALUES

__all__ = [
    "VARY_PARAMS",
    "VARY_QUANTITIES",
    "vary_axes",
    "vary_panel_rows",
    "plot_vary",
    "plot_vary_quirks",
]

#: The parameters of the vary set, one panel column each.
VARY_PARAMS: tuple[str, ...] = tuple(VARY_VALUES)
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
    """The values of each vary parameter in the table, and the point other panels hold it at.

    The point is the paper's default (``VARY_DEFAULTS``) where the table has it, else the
    parameter's smallest value (a sweep file's own grid, ``d = 50`` say).

    Examples
    --------
    The d and T sweeps through the default point (d = 10, T = 3):

    >>> table = pd.DataFrame({"d": [5, 10, 20, 10, 10], "T": [3, 3, 3, 2, 5], "N": 5000,
    ...                       "n": 100, "k": 1})
    >>> values, centre = vary_axes(table)
    >>> values["d"], values["T"], centre
    ((5, 10, 20), (2, 3, 5), {'d': 10, 'T': 3, 'N': 5000, 'n': 100, 'k': 1})
    """
    values, centre, _, _ = star_layout(table, VARY_PARAMS, VARY_DEFAULTS)
    return values, centre


def vary_panel_rows(table: pd.DataFrame, param: str, value: int,
                    defaults: Mapping[str, int] | None = None,
                    authors_quirks: bool | None = False) -> pd.DataFrame:
    """Rows of the vary panel where ``param = value`` and the other parameters at ``defaults``.

    ``defaults`` is the table's own point (:func:`vary_axes`; the paper's ``VARY_DEFAULTS`` on
    its grid) unless given. Only rows with the given ``authors_quirks`` are kept (when the
    table has that column and it is not None), and the panel is cut at its sweep's fine-tuning
    horizon: the smallest ``ft_steps`` of the configurations of the sweep (the default point
    runs the longest of its sweeps, :func:`lowrank_theory.simulations.configs.vary_configs`,
    and each panel shows its own sweep's count).
    """
    values, table_defaults = vary_axes(table)
    defaults = table_defaults if defaults is None else defaults

    def panel(param_values):
        mask = table[param].isin(param_values)
        for other, default in defaults.items():
            if other != param:
                mask &= table[other] == default
        if "authors_quirks" in table and authors_quirks is not None:
            mask &= table["authors_quirks"].astype(bool) == authors_quirks
        return mask

    rows = table[panel([value])]
    if "ft_steps" in rows and not rows.empty:
        rows = rows[rows["iteration"] <= table.loc[panel(values[param]), "ft_steps"].min()]
    return rows


def _rank_note(rows: pd.DataFrame) -> str:
    """``"; adapter rank 3k = 3"`` for rows at T = 2, where fine-tuning uses rank 3k."""
    if "T" not in rows or rows.empty or set(rows["T"]) != {2}:
        return ""
    rank = (int(rows["ft_rank"].iloc[0]) if "ft_rank" in rows
            else 3 * int(rows["k"].iloc[0]) if "k" in rows else None)
    return "" if rank is None else f"\nfine-tuning adapter rank 3k = {rank}"


def _draw_vary_panel(ax, rows: pd.DataFrame, title: str, quantity: str, band: str,
                     methods: Sequence[str] = ("SR", "LoRA-ML")) -> None:
    for method in methods:
        sub = rows[rows["method"] == method]
        if not sub.empty:
            draw_band(ax, sub, "iteration", quantity, _curve_label(method, sub),
                      method_style(method), band)
    ax.set_yscale("log")
    ax.set_title(title + _rank_note(rows))


def _check_quantities(quantities: tuple[str, ...]) -> None:
    unknown = [q for q in quantities if q not in VARY_QUANTITIES]
    if unknown or not quantities:
        raise ValueError(f"quantities must be a non-empty tuple among {list(VARY_QUANTITIES)}, "
                         f"got {quantities!r}")


def _without_quirks(table: pd.DataFrame) -> pd.DataFrame:
    """The runs without ``authors_quirks`` when the table has both kinds, else every run."""
    if "authors_quirks" in table and table["authors_quirks"].nunique() > 1:
        return table[~table["authors_quirks"].astype(bool)]
    return table


def _vary_native(table: pd.DataFrame, params: Sequence[str] | None) -> list[str]:
    """The columns a vary figure draws itself (see :func:`star_layout`)."""
    _, _, varying, star = star_layout(table, VARY_PARAMS, VARY_DEFAULTS)
    if star or not varying:
        drawn = varying
    else:
        drawn = [next((p for p in (params or ()) if p in varying), varying[0])]
    return [*drawn, "method", "authors_quirks"]


def plot_vary(table: pd.DataFrame, params: tuple[str, ...] | None = None,
              quantities: tuple[str, ...] = ("test_loss",), band: str = DEFAULT_BAND):
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
    band : {"ci95", "minmax"}
        The band around the mean over seeds (:mod:`lowrank_theory.figures.bands`).

    Returns
    -------
    matplotlib.figure.Figure
        Rows are (parameter, quantity) pairs; panels share the y axis within a row. When the
        table's points are not one parameter at a time around a centre (a Cartesian grid),
        the first varying parameter is drawn in panels and the others become facets, as does
        any other swept field (``sigma``, ``rounds``...). When the table also has runs with
        ``authors_quirks``, they are left out (:func:`plot_vary_quirks` shows them).
    """
    _check_quantities(quantities)
    _require(table, ["method", "seed", "iteration", *quantities, *VARY_DEFAULTS], "vary")
    check_band(band)
    unknown = [p for p in (params or ()) if p not in VARY_VALUES]
    if unknown:
        raise ValueError(f"params must be among {list(VARY_VALUES)}, got {unknown}")
    rows = _without_quirks(table)
    name = f"vary_{params[0]}" if params and len(params) == 1 else "vary"
    return faceted(_draw_vary, rows, _vary_native(rows, params), name=name, experiment="vary",
                   params=params, quantities=quantities, band=band)


def _draw_vary(table: pd.DataFrame, *, params: Sequence[str] | None,
               quantities: Sequence[str], band: str, fig=None):
    values, centre, varying, _ = star_layout(table, VARY_PARAMS, VARY_DEFAULTS)
    shown = [p for p in (params or varying) if p in VARY_PARAMS] or [None]
    rows_spec = [(p, q) for p in shown for q in quantities]
    ncols = max(len(values[p]) if p else 1 for p in shown)
    with house_style():
        fig = canvas(fig, (max(3.4 * ncols, 5.0), 2.7 * len(rows_spec) + 1.4))
        axes = fig.subplots(len(rows_spec), ncols, squeeze=False, sharey="row")
        for row, (param, quantity) in enumerate(rows_spec):
            others = ", ".join(f"{p}={v}" for p, v in centre.items() if p != param)
            for col in range(ncols):
                ax = axes[row, col]
                if param is None:
                    panel, title = table, others
                elif col < len(values[param]):
                    value = values[param][col]
                    panel = vary_panel_rows(table, param, value, centre, authors_quirks=None)
                    title = f"{param} = {value}" + ("" if col else f"  ({others})")
                else:
                    ax.set_visible(False)
                    continue
                _draw_vary_panel(ax, panel, wrap(title, 3.3, 10), quantity, band)
                if col == 0:
                    ax.set_ylabel(VARY_QUANTITIES[quantity])
                if row == len(rows_spec) - 1:
                    ax.set_xlabel("fine-tuning iteration")
        _legend(fig, axes)
        which = ("varying " + ", ".join(p for p in shown if p) if shown != [None]
                 else "at one point of " + ", ".join(VARY_PARAMS))
        width = fig.requested_size[0] if hasattr(fig, "requested_size") else fig.get_figwidth()
        fig.suptitle(wrap("Fine-tuning on an unseen task after LoRA-ML or SR retraining\n"
                          f"({which}; {band_caption(band, _seeds(table), log=True)})\n"
                          + "\n".join(_QUANTITY_TITLE[q] for q in quantities), width, 12))
    return fig


def plot_vary_quirks(table: pd.DataFrame, param: str | None = None,
                     quantity: str = "insample_error", band: str = DEFAULT_BAND):
    """What the authors' two quirks change: one row per setting, one column per value.

    Rows: the model as stated (noise standard deviation ``sigma``, SR by pooled least
    squares); the authors' noise (standard deviation ``sigma^2``) with the same SR; and both
    quirks, the noise and the authors' SR baseline (the setting of the paper's figures).
    The first row comes from runs without ``authors_quirks``, the other two from the runs
    with it (which report both SR baselines on the same samples); a row without runs is left
    out.

    Parameters
    ----------
    table : DataFrame
        The ``vary`` table, with runs that have ``authors_quirks``.
    param : str, optional
        The parameter in columns; default ``T`` when it varies (the T sweep shows the T = 2
        gap of the paper's figure), else the first that varies.
    quantity : str
        ``"insample_error"`` (the paper's, default) or ``"test_loss"``.
    band : {"ci95", "minmax"}

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the table has no runs with ``authors_quirks``.
    """
    _check_quantities((quantity,))
    _require(table, ["method", "seed", "iteration", "authors_quirks", quantity,
                     *VARY_DEFAULTS], "vary")
    check_band(band)
    if not table["authors_quirks"].astype(bool).any():
        raise ValueError("the vary table has no runs with authors_quirks: nothing to compare")
    if param is not None and param not in VARY_VALUES:
        raise ValueError(f"param must be one of {list(VARY_VALUES)}, got {param!r}")
    _, _, varying, star = star_layout(table, VARY_PARAMS, VARY_DEFAULTS)
    if param is None:
        param = "T" if "T" in varying or not varying else varying[0]
    native = [*(varying if star else [param]), "authors_quirks", "method"]
    return faceted(_draw_vary_quirks, table, native, name="vary_quirks", experiment="vary",
                   param=param, quantity=quantity, band=band)


def _draw_vary_quirks(table: pd.DataFrame, *, param: str, quantity: str, band: str, fig=None):
    values, centre, _, _ = star_layout(table, VARY_PARAMS, VARY_DEFAULTS)
    quirks = table["authors_quirks"].astype(bool)
    settings = [(q, methods, label) for q, methods, label in _QUIRK_ROWS
                if table[(quirks == q) & table["method"].isin(methods[:1])].shape[0]]
    ncols = len(values[param])
    with house_style():
        fig = canvas(fig, (max(3.4 * ncols, 5.0), 3.0 * len(settings) + 1.2))
        subfigs = fig.subfigures(len(settings), 1, squeeze=False)[:, 0]
        axes = np.array([sub.subplots(1, ncols, squeeze=False)[0] for sub in subfigs])
        for row, (q, methods, label) in enumerate(settings):
            subfigs[row].suptitle(wrap(label, 3.4 * ncols, 10))
            for col, value in enumerate(values[param]):
                ax = axes[row, col]
                rows = vary_panel_rows(table, param, value, centre, authors_quirks=q)
                if rows.empty:  # no run of this setting at this value: no empty panel
                    ax.set_visible(False)
                    continue
                _draw_vary_panel(ax, rows, f"{param} = {value}", quantity, band, methods)
                if col == 0:
                    ax.set_ylabel(VARY_QUANTITIES[quantity])
                if row == len(settings) - 1:
                    ax.set_xlabel("fine-tuning iteration")
        # One y range for the whole figure, so the rows compare at a glance.
        limits = np.array([ax.get_ylim() for ax in axes.flat if ax.get_visible()])
        for ax in axes.flat:
            ax.set_ylim(limits[:, 0].min(), limits[:, 1].max())
        _legend(fig, axes)
        fig.suptitle(wrap("What the authors' noise (sd sigma^2) and SR baseline change, one at "
                          f"a time\n{_QUANTITY_TITLE[quantity]}; "
                          f"{band_caption(band, _seeds(table), log=True)}", 3.4 * ncols, 12),
                     fontsize=11)
    return fig
