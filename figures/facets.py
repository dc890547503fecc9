"""Figures true to their grid: every swept field gets a visual channel, or the figure is skipped.

A figure draws some columns itself (its *native* columns: the x axis, its panels, its curves;
the vary figure's panels are ``d, T, N, n, k``, its curves the methods). Every other config
field that takes several values among rows the figure would otherwise pool becomes a facet:

**The rule.** Group the rows by the figure's native columns. A config field (a field of the
experiment's config class present as a column) that varies within one of those groups is
*extra*; the figure is drawn once per combination of the extra fields' values, the blocks
stacked top to bottom, each titled ``field = value, ...``. Configs that differ only in a field
with no column of its own (a tuple such as ``n_grid``) are told apart by ``config_hash``. A
field that the native columns determine (the vary set's ``ft_steps``, fixed per panel) needs no
channel. Past :data:`MAX_FACETS` blocks the figure is skipped (:class:`FigureSkipped`, naming the
figure and the fields); the tables are written anyway.

So no drawn point of a curve, bar, cell or histogram pools rows of two configs; each drawing
function records the ``config_hash`` of the rows behind every data artist as the artist's
``gid`` (:func:`tag`), which the tests read back.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MAX_FACETS",
    "FigureSkipped",
    "FigureWarning",
    "config_types",
    "config_fields",
    "facet_keys",
    "facet_groups",
    "facet_label",
    "config_label",
    "tag",
    "faceted",
]

#: Most facet blocks a figure draws; past it the figure is skipped with a message.
MAX_FACETS = 8
#: Widest figure (inches) that facets are laid side by side in; further blocks start a new row.
MAX_WIDTH = 17.0


class FigureSkipped(Exception):
    """A figure that is not drawn; the message names the figure and says why."""


class FigureWarning(UserWarning):
    """A figure skipped while drawing a run's figures (shown on stderr by the command line)."""


@functools.cache
def config_types() -> dict[str, type]:
    """The config class of each experiment, by the name in a table's ``experiment`` column.

    Read from the experiment registries (the linear ones and the neural configs), so a new
    experiment is known here as soon as it is registered.
    """
    from lowrank_theory.simulations.experiments import EXPERIMENTS
    from lowrank_theory.simulations.neural.configs import CONFIG_TYPES

    return {**{e.name: e.config_type for e in EXPERIMENTS.values()},
            **{f"neural_{name}": config_type for name, config_type in CONFIG_TYPES.items()}}


def config_fields(table: pd.DataFrame, experiment: str | None = None) -> list[str]:
    """The config fields that are columns of ``table``, in the config class's order.

    The class is that of the table's ``experiment`` column (:func:`config_types`), or of
    ``experiment`` for a table without that column; an unknown experiment has none.

    Examples
    --------
    >>> config_fields(pd.DataFrame({"experiment": ["phase"], "T": [2], "k": [1], "seed": [0]}))
    ['T', 'k']
    >>> config_fields(pd.DataFrame({"sigma": [0.1], "n": [20]}), experiment="rate")
    ['sigma']
    """
    if table.empty:
        return []
    names = table["experiment"].unique() if "experiment" in table.columns else [experiment]
    fields: list[str] = []
    for name in names:
        config_type = config_types().get(str(name))
        if config_type is not None:
            fields += [f.name for f in dataclasses.fields(config_type)
                       if f.name in table.columns and f.name not in fields]
    return fields


def _varies_within(table: pd.DataFrame, by: Sequence[str], column: str) -> bool:
    if column not in table.columns:
        return False
    if not by:
        return table[column].nunique(dropna=False) > 1
    return bool((table.groupby(list(by), dropna=False)[column].nunique(dropna=False) > 1).any())


def facet_keys(table: pd.DataFrame, native: Sequence[str], experiment: str | None = None
               ) -> list[str]:
    """The columns that need facets: config fields the native columns leave pooled.

    Parameters
    ----------
    table : DataFrame
        The rows the figure draws.
    native : sequence of str
        The columns the figure separates by itself (x axis, panels, curves).
    experiment : str, optional
        Whose config fields to look for when ``table`` has no ``experiment`` column.

    Returns
    -------
    list of str
        The extra fields of the module's rule, then ``"config_hash"`` when configs that agree
        on every column would still be pooled.

    Examples
    --------
    >>> table = pd.DataFrame({"experiment": "vary", "config_hash": ["a", "a", "b", "b"],
    ...                       "T": 3, "sigma": [0.1, 0.1, 1.0, 1.0], "method": ["SR", "LoRA-ML"] * 2})
    >>> facet_keys(table, native=["T", "method"])
    ['sigma']
    """
    native = [c for c in native if c in table.columns]
    fields = [f for f in config_fields(table, experiment) if f not in native]
    if native:
        counts = table.groupby(native, dropna=False)[fields].nunique(dropna=False).max()
    else:
        counts = table[fields].nunique(dropna=False)
    keys = [f for f in fields if counts.get(f, 0) > 1]
    if _varies_within(table, native + keys, "config_hash"):
        keys.append("config_hash")
    return keys


def facet_label(values: dict[str, Any]) -> str:
    """``"sigma = 0.1, T = 3"``: a facet's values, as its title shows them."""
    def text(value: Any) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k} = {text(v)}" for k, v in values.items())


def config_label(table: pd.DataFrame, columns: Sequence[str], fig: Any = None) -> str:
    """``"d=10, k=1"``: the columns of ``columns`` with one value in ``table``.

    Inside a facet block (``fig`` drawn by :func:`faceted`), the facet's own fields are left
    out: the block's title names them, and the figure's title is shared by every block.

    Examples
    --------
    >>> config_label(pd.DataFrame({"d": [10, 10], "k": [1, 2], "sigma": [0.1, 0.1]}),
    ...              ["d", "k", "sigma"])
    'd=10, sigma=0.1'
    """
    skip = set(getattr(fig, "facet_keys", ()))

    def text(value: Any) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{c}={text(table[c].iloc[0])}" for c in columns
                     if c in table.columns and c not in skip and table[c].nunique() == 1)


def facet_groups(table: pd.DataFrame, native: Sequence[str], *, name: str = "figure",
                 experiment: str | None = None, limit: int = MAX_FACETS
                 ) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Split ``table`` into the facets of the module's rule, in sorted order.

    Raises
    ------
    FigureSkipped
        If there are more than ``limit`` facets; the message names ``name``, the fields and
        what to do instead.
    """
    keys = facet_keys(table, native, experiment)
    if not keys:
        return [({}, table)]
    groups = [(dict(zip(keys, values if isinstance(values, tuple) else (values,))), rows)
              for values, rows in table.groupby(keys, sort=True, dropna=False)]
    if len(groups) > limit:
        verb = "gives" if len(keys) == 1 else "give"
        raise FigureSkipped(
            f"figure {name} skipped: {', '.join(keys)} {verb} {len(groups)} facets, more than "
            f"the {limit} a figure holds; draw a subset with "
            f"lowrank_theory.figures.draw(table[...], {name!r})")
    return groups


def tag(artist: Any, rows: pd.DataFrame, x: str | None = None) -> Any:
    """Record the configs behind ``artist`` as its ``gid``; return the artist.

    The ``gid`` is the sorted ``config_hash`` values of ``rows`` joined by ``+``: two of them
    mean the artist pools two configs. When ``x`` (a config field drawn as the x axis) is
    given, each point has its own configs, joined by ``|`` in the order of ``x``: a line may
    join configs along its x axis, but no point may pool two.

    Examples
    --------
    >>> import matplotlib.lines
    >>> rows = pd.DataFrame({"config_hash": ["a", "b", "b"], "d": [5, 15, 15]})
    >>> tag(matplotlib.lines.Line2D([], []), rows, x="d").get_gid()
    'a|b'
    >>> tag(matplotlib.lines.Line2D([], []), rows).get_gid()
    'a+b'
    """
    if "config_hash" not in rows.columns:
        return artist
    configs = "+".join(sorted(map(str, rows["config_hash"].unique())))
    if x is not None and "+" in configs:
        configs = "|".join("+".join(sorted(map(str, group.unique())))
                           for _, group in rows.groupby(x, sort=True)["config_hash"])
    artist.set_gid(configs)
    return artist


def faceted(draw: Callable[..., Any], table: pd.DataFrame, native: Sequence[str], *,
            name: str = "figure", experiment: str | None = None, limit: int = MAX_FACETS,
            **kwargs: Any):
    """Draw ``draw(rows, fig=...)`` once per facet of ``table`` into one figure.

    With one facet this is ``draw(table, **kwargs)``. Otherwise the blocks are subfigures,
    side by side up to :data:`MAX_WIDTH` inches and then in further rows, each titled with
    its facet's values; the first block's title becomes the figure's, and the blocks'
    legends are merged into one under the figure.

    Parameters
    ----------
    draw : callable
        ``draw(rows, fig=None, **kwargs) -> Figure``; given ``fig`` (a subfigure) it draws
        into it and records the size it wants as ``fig.requested_size`` (:func:`canvas`).
    table : DataFrame
    native : sequence of str
        The columns ``draw`` separates itself.
    name : str
        The figure's name, for the message when it is skipped.
    experiment : str, optional
        Whose config fields to look for when ``table`` has no ``experiment`` column.
    limit : int
        Most facets.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    FigureSkipped
        Past ``limit`` facets.
    """
    import matplotlib.pyplot as plt
    from lowrank_theory.figures.style import ProbedSize, SizeProbe, house_style

    groups = facet_groups(table, native, name=name, experiment=experiment, limit=limit)
    if len(groups) == 1:
        return draw(table, **kwargs)
    with house_style():
        # The blocks' width decides how many fit side by side: ask the first for its size.
        keys = tuple(groups[0][0])
        probe = SizeProbe()
        probe.facet_keys = keys
        try:
            draw(groups[0][1], fig=probe, **kwargs)
            width = 6.4
        except ProbedSize as asked:
            width = asked.size[0]
        ncols = max(1, min(len(groups), int(MAX_WIDTH // width)))
        nrows = -(-len(groups) // ncols)
        fig = plt.figure(layout="constrained")
        grid = fig.subfigures(nrows, ncols, squeeze=False)
        titles, entries = [], {}
        for block, (values, rows) in zip(grid.flat, groups):
            block.facet_keys, block.facet_values = keys, values
            draw(rows, fig=block, **kwargs)
            if block._suptitle is not None:
                titles.append(block._suptitle.get_text())
            for legend in list(block.legends):
                for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
                    entries.setdefault(text.get_text(), handle)
                legend.remove()
            block.suptitle(facet_label(values), fontweight="bold")
        for spare in grid.flat[len(groups):]:  # the last row's empty places
            fig.subfigs.remove(spare)
        sizes = np.array([_requested(b) for b in grid.flat[:len(groups)]]
                         + [(0.0, 0.0)] * (grid.size - len(groups))).reshape(nrows, ncols, 2)
        heights, widths = sizes[..., 1].max(axis=1), sizes[..., 0].max(axis=0)
        gridspec = grid[0, 0]._subplotspec.get_gridspec()
        gridspec.set_height_ratios(heights)
        gridspec.set_width_ratios(widths)
        title = titles[0] if titles else ""
        fig.set_size_inches(widths.sum(), heights.sum() + 0.2 * (title.count("\n") + 1)
                            + (0.5 if entries else 0.0))
        if title:
            fig.suptitle(title)
        if entries:
            fig.legend(list(entries.values()), list(entries), loc="outside lower center",
                       ncols=min(4, len(entries)))
    return fig


def _requested(fig) -> tuple[float, float]:
    return getattr(fig, "requested_size", (6.4, 4.8))
