"""The band drawn around a mean over seeds: a 95% confidence interval by default, or min-max.

``"ci95"`` (default) is the two-sided 95% Student-t interval of the mean,
``mean +- t(0.975, m - 1) s / sqrt(m)`` over ``m`` seeds with sample standard deviation ``s``:
the interval a paper reports. It assumes the seeds' values are independent draws; with one seed
there is no interval and no band is drawn. On a log axis (losses that span decades) the
interval is taken of ``log y``: the line is the geometric mean and the band its 95% t-interval,
``exp(mean(log y) +- t s_log / sqrt(m))``, which stays positive (an interval of ``y`` itself
would reach below zero with three seeds). ``"minmax"`` draws the arithmetic mean and spans the
smallest and largest value over the seeds (a description of the spread, not an interval).
Every figure names its band in its title (:func:`band_caption`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["BANDS", "DEFAULT_BAND", "check_band", "band_stats", "band_caption"]

#: The bands a figure can draw, and how their title names them.
BANDS: dict[str, str] = {
    "ci95": "mean and 95% t-interval of the mean",
    "minmax": "mean and min-max",
}
#: How a log axis's ``ci95`` is named (the interval is taken of ``log y``).
LOG_CI95 = "geometric mean and 95% t-interval of log y"
#: The band figures draw unless told otherwise.
DEFAULT_BAND = "ci95"


def check_band(band: str) -> str:
    """Return ``band`` if it is one of :data:`BANDS`, else raise ``ValueError`` naming them."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {', '.join(map(repr, BANDS))}; got {band!r}")
    return band


def band_stats(rows: pd.DataFrame, x: str | list[str], y: str, band: str = DEFAULT_BAND,
               *, log: bool = False, floor: float = 1e-300) -> pd.DataFrame:
    """Mean, band limits and count of ``y`` over the rows of each ``x``, sorted by ``x``.

    Parameters
    ----------
    rows : DataFrame
        One row per seed (and ``x``).
    x : str or list of str
        The grouping column(s).
    y : str
        The value column.
    band : {"ci95", "minmax"}
    log : bool
        For a log axis: ``ci95`` on ``log y`` (``mean`` is then the geometric mean), values
        below ``floor`` taken at it.
    floor : float
        Smallest value on a log axis.

    Returns
    -------
    DataFrame
        Indexed by ``x``; columns ``mean``, ``low``, ``high``, ``count``. With one value the
        ``ci95`` limits equal the mean.

    Examples
    --------
    >>> rows = pd.DataFrame({"n": [1, 1, 1], "loss": [1.0, 2.0, 3.0]})
    >>> band_stats(rows, "n", "loss").round(3).to_dict("records")
    [{'mean': 2.0, 'low': -0.484, 'high': 4.484, 'count': 3}]
    >>> band_stats(rows, "n", "loss", band="minmax")[["low", "high"]].to_dict("records")
    [{'low': 1.0, 'high': 3.0}]
    >>> round(band_stats(rows.assign(loss=[1e-4, 1e-2, 1.0]), "n", "loss", log=True)["mean"].item(), 12)
    0.01
    """
    from scipy import stats

    check_band(band)
    if not isinstance(x, str):
        key = pd.MultiIndex.from_frame(rows[list(x)])
        codes, uniques = pd.factorize(key, sort=True)
        index = pd.MultiIndex.from_tuples(list(uniques), names=list(x))
    else:
        codes, uniques = pd.factorize(rows[x], sort=True)
        index = pd.Index(uniques, name=x)
    values = rows[y].to_numpy(dtype=float)
    count = np.bincount(codes, minlength=len(index))
    if band == "minmax":
        low, high = np.full(len(index), np.inf), np.full(len(index), -np.inf)
        np.minimum.at(low, codes, values)
        np.maximum.at(high, codes, values)
        mean = np.bincount(codes, values, len(index)) / count
    else:
        if log:
            values = np.log(np.maximum(values, floor))
        mean = np.bincount(codes, values, len(index)) / count
        squares = np.bincount(codes, (values - mean[codes]) ** 2, len(index))
        std = np.sqrt(squares / np.maximum(count - 1, 1))
        t = np.where(count > 1, stats.t.ppf(0.975, np.maximum(count - 1, 1)), 0.0)
        half = t * std / np.sqrt(count)
        low, high = mean - half, mean + half
        if log:
            mean, low, high = np.exp(mean), np.exp(low), np.exp(high)
    return pd.DataFrame({"mean": mean, "low": low, "high": high, "count": count}, index=index)


def band_caption(band: str, seeds: int, *, log: bool = False) -> str:
    """How a figure's title names its band (``log``: the ``ci95`` of a log axis).

    Examples
    --------
    >>> band_caption("ci95", 3)
    'mean and 95% t-interval of the mean over 3 seeds'
    >>> band_caption("ci95", 3, log=True)
    'geometric mean and 95% t-interval of log y over 3 seeds'
    >>> band_caption("ci95", 1)
    'one seed (no interval)'
    """
    check_band(band)
    if seeds <= 1:
        return "one seed (no interval)"
    text = LOG_CI95 if (log and band == "ci95") else BANDS[band]
    return f"{text} over {seeds} seeds"
