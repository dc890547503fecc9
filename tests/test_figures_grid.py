"""Figures are true to their grid: every field of every experiment, swept over two values.

For each experiment and each field of its config, a table of two configs (a tiny base config
and the same with that one field changed) is drawn by every figure of the experiment, and the
drawn artists are read back. Each drawing function tags the artists it draws with the configs
of their rows (``gid``, :func:`lowrank_theory.figures.facets.tag`), so the test compares:

- no drawn point pools two configs (a ``gid`` with ``+``);
- every config of the rows a figure draws appears in it, and the two configs are told apart:
  in separate panels, at separate x positions, or in separate facet blocks titled with the
  field's values, never as two identical curves in one panel;
- over an experiment's figures, both configs are drawn.

The linear experiments' tables come from their run functions at tiny sizes; the neural ones
(minutes of torch) are built from the config's columns and the rows their run functions write.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import typing

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from lowrank_theory.figures.facets import MAX_FACETS, FigureSkipped
from lowrank_theory.figures.make import FIGURES, NothingToDraw
from lowrank_theory.simulations.configs import (
    AtlasConfig,
    LandscapeConfig,
    PhaseConfig,
    RateConfig,
    VaryConfig,
)
from lowrank_theory.simulations.experiments import EXPERIMENTS
from lowrank_theory.simulations.fields import field_specs
from lowrank_theory.simulations.neural.configs import preset_base
from lowrank_theory.simulations.schemes import SchemesConfig

matplotlib.use("Agg")

#: Tiny configs whose runs take milliseconds.
BASES = {
    "vary": VaryConfig(d=3, T=3, N=30, n=10, k=1, rounds=3, ft_steps=4),
    "phase": PhaseConfig(d=3, T=3, k=1, restarts=1),
    "rate": RateConfig(d=3, T=3, k=1, N=30, n_grid=(5, 20)),
    "landscape": LandscapeConfig(d=3, T=2, k=1, starts=3),
    "schemes": SchemesConfig(d=3, T=2, k=1, N=30, n_grid=(5,), population=False, max_rank=1,
                             ft_steps=2, subspace_steps=(0,)),
    "atlas": AtlasConfig(d=3, k=1, T=3, search_starts=1, rounds=40),
    "neural_shallow": preset_base("shallow", "cpu", 0.001),
    "neural_vision": preset_base("vision", "cpu", 0.001),
    "neural_language": preset_base("language", "cpu", 0.001),
}
SEEDS = (0, 1)


def _candidates(hint, spec_default, meta):
    """Values to try for a field other than its default, most natural first."""
    value = spec_default
    if hint is bool:
        return [not value]
    if hint is str:
        return [c for c in meta.get("choices", ()) if c != value] or [value + "x"]
    if hint is int:
        return [value + 1, value - 1, value * 2, value // 2]
    if hint is float:
        return [value * 2 if value else 0.5, value / 2]
    # a tuple: one item fewer, or the items moved
    if len(value) > 1:
        shifted = [tuple(i - 2 for i in value)] if isinstance(value[0], int) else []
        return [value[:-1], value[1:], *shifted]
    item = value[0]
    if "choices" in meta:
        return [(c,) for c in meta["choices"] if c != item]
    if isinstance(item, tuple):
        return [(tuple(i + 2 for i in item),)]
    return [(item + 1,), (item, item + 1)]


def other_config(base, name: str):
    """``base`` with the field ``name`` changed to the first valid other value."""
    hints = typing.get_type_hints(type(base))
    meta = next(f.metadata for f in dataclasses.fields(base) if f.name == name)
    for value in _candidates(hints[name], getattr(base, name), meta):
        try:
            return dataclasses.replace(base, **{name: value})
        except (TypeError, ValueError):
            continue
    raise AssertionError(f"no valid second value for {type(base).__name__}.{name}")


def _keys(frame: pd.DataFrame, experiment: str, config) -> pd.DataFrame:
    front = pd.DataFrame({"experiment": experiment, "config_hash": config.config_hash()},
                         index=frame.index)
    columns = {k: v for k, v in config.columns().items() if k not in frame.columns}
    return pd.concat([front, frame.assign(**columns)], axis=1)


@functools.cache
def rows_of(experiment: str, config) -> pd.DataFrame:
    """The table rows of one config: a real run (linear), or the rows a neural run writes."""
    rng = np.random.default_rng(abs(hash(config.config_hash())) % 2**32)
    if experiment in EXPERIMENTS:
        frame = EXPERIMENTS[experiment].run(config, SEEDS)
    elif experiment == "neural_shallow":
        frame = pd.DataFrame([
            {"seed": s, "method": m, "ft_rank": r, "fit_error": rng.uniform(0.01, 1),
             "test_error": rng.uniform(0.01, 1), "test_loss": rng.uniform(0.01, 1)}
            for s in SEEDS for m in config.methods for r in config.finetune_ranks])
    else:
        frame = pd.DataFrame([
            {"seed": s, "method": m, "finetune": f, "test_accuracy": rng.uniform(0.5, 1)}
            for s in SEEDS for m in config.methods for f in config.finetune_modes])
    return _keys(frame, experiment, config)


#: The rows some figures draw, as their docstrings state; the others draw every row. vary and
#: vary_paper_quantity leave out the runs with authors_quirks when the table also has runs
#: without (vary_quirks shows them).
SELECTS = {
    "vary": lambda t: t[~t["authors_quirks"]] if t["authors_quirks"].nunique() > 1 else t,
    "schemes_n": lambda t: t[np.isfinite(t["n"])],
    "schemes_forgetting": lambda t: t[np.isfinite(t["n"])],
    "schemes_perturbation": lambda t: t[t["scheme"].str.startswith("perturbation")],
}
SELECTS["vary_paper_quantity"] = SELECTS["vary"]


def _gids(fig) -> list[tuple[object, str]]:
    """(axes, gid) of every tagged artist of the figure."""
    out = []
    for ax in fig.axes:
        for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts]:
            if artist.get_gid():
                out.append((ax, artist.get_gid()))
    return out


def _configs(gid: str) -> set[str]:
    return {h for point in gid.split("|") for h in point.split("+")}


CASES = [(experiment, spec.name) for experiment, base in BASES.items()
         for spec in field_specs(type(base))]


@pytest.mark.parametrize(("experiment", "field"), CASES, ids=[f"{e}-{f}" for e, f in CASES])
def test_every_figure_draws_both_configs_of_a_two_value_sweep(experiment, field):
    base = BASES[experiment]
    other = other_config(base, field)
    hashes = {base.config_hash(), other.config_hash()}
    assert len(hashes) == 2
    table = pd.concat([rows_of(experiment, base), rows_of(experiment, other)], ignore_index=True)
    drawn: set[str] = set()
    figures = 0
    for spec in FIGURES[experiment]:
        try:
            fig = spec.draw(table)
        except NothingToDraw:
            continue
        figures += 1
        tagged = _gids(fig)
        assert tagged, f"{spec.stem}: no data drawn"
        pooled = [gid for _, gid in tagged if "+" in gid]
        assert not pooled, f"{spec.stem} pools configs in one point: {pooled[:3]}"
        seen = set().union(*(_configs(gid) for _, gid in tagged))
        assert seen <= hashes
        expected = set(SELECTS.get(spec.stem, lambda t: t)(table)["config_hash"])
        assert seen == expected, f"{spec.stem} draws {len(seen)} of {len(expected)} configs"
        if len(seen) == 2:
            _check_told_apart(fig, tagged, spec.stem, field, table)
        plt.close(fig)
    assert figures >= 1
    assert drawn | hashes == hashes


def _check_told_apart(fig, tagged, stem, field, table):
    """Two configs in one panel must be at separate x positions (the field is the x axis or a
    cell of a heat map); otherwise they are in separate panels; and when the figure has facet
    blocks, they are two, titled with the field's values (or the config hashes)."""
    per_axes: dict[object, set[str]] = {}
    for ax, gid in tagged:
        per_axes.setdefault(ax, set()).add(gid)
    for ax, gids in per_axes.items():
        configs = set().union(*(_configs(g) for g in gids))
        if len(configs) > 1:
            # Shared panel: each point names one config and a line joining two configs runs
            # along the x axis (gids with "|"), or the cells/points are separate artists.
            lines = [g for g in gids if "|" in g]
            assert lines or len(gids) > 1, f"{stem}: a panel mixes configs in one artist"
            labels = [a.get_label() for a in ax.lines if a.get_gid() in gids
                      and not a.get_label().startswith("_")]
            if not lines:
                assert len(set(labels)) == len(labels), (
                    f"{stem}: two configs drawn as identical curves {labels} in one panel")
    blocks = _blocks(fig)
    if blocks:
        titles = [sub._suptitle.get_text() for sub in blocks]
        assert len(titles) == 2, f"{stem}: {titles}"
        key = field if field in table.columns else "config_hash"
        assert all(t.startswith(f"{key} = ") for t in titles), titles
        for sub in blocks:
            inside = {g for ax, g in tagged if ax in _axes_of(sub)}
            assert len(set().union(*(_configs(g) for g in inside))) == 1


def _blocks(fig) -> list:
    """The facet blocks of a figure (subfigures made by faceted, not a figure's own rows)."""
    return [sub for sub in np.ravel(fig.subfigs) if hasattr(sub, "facet_values")]


def _axes_of(sub) -> list:
    """The axes of a subfigure and of the subfigures inside it."""
    return [*sub.axes, *(ax for inner in sub.subfigs for ax in _axes_of(inner))]


def test_cases_cover_every_field_of_every_experiment():
    """The cases sweep every field of every experiment with figures (a new field or a new
    experiment enters the test by itself)."""
    assert set(BASES) == set(FIGURES)
    assert len(CASES) == sum(len(dataclasses.fields(b)) for b in BASES.values()) > 100


def test_past_the_facet_limit_a_figure_is_skipped_naming_it_and_why():
    """MAX_FACETS + 1 noise levels are too many facets: the figure raises FigureSkipped with
    its name and the field; MAX_FACETS levels draw (the control)."""
    sigmas = [0.05 * (i + 1) for i in range(MAX_FACETS + 1)]
    configs = [dataclasses.replace(BASES["rate"], sigma=s) for s in sigmas]
    table = pd.concat([rows_of("rate", c) for c in configs], ignore_index=True)
    (spec,) = FIGURES["rate"]
    with pytest.raises(FigureSkipped) as exc:
        spec.draw(table)
    assert "adaptation_rate" in str(exc.value) and "sigma" in str(exc.value)
    assert f"gives {MAX_FACETS + 1} facets" in str(exc.value)
    fig = spec.draw(table[table["sigma"] != sigmas[-1]])
    assert len(_blocks(fig)) == MAX_FACETS
    plt.close(fig)


def test_two_fields_swept_together_give_a_facet_per_combination():
    """A Cartesian grid over sigma and N (rate: neither is drawn natively) gives 2 x 2 facet
    blocks, each holding one config."""
    configs = [dataclasses.replace(BASES["rate"], sigma=s, N=N)
               for s, N in itertools.product((0.1, 1.0), (30, 40))]
    table = pd.concat([rows_of("rate", c) for c in configs], ignore_index=True)
    fig = FIGURES["rate"][0].draw(table)
    titles = sorted(sub._suptitle.get_text() for sub in _blocks(fig))
    assert titles == ["N = 30, sigma = 0.1", "N = 30, sigma = 1", "N = 40, sigma = 0.1",
                      "N = 40, sigma = 1"]
    plt.close(fig)


def test_config_types_cover_every_registered_experiment():
    """The facet rule knows the config class of every experiment the registries hold (and of
    every table FIGURES draws), so no experiment's swept fields go unseen."""
    from lowrank_theory.figures.facets import config_types

    names = {e.name for e in EXPERIMENTS.values()}
    assert names | {"neural_shallow", "neural_vision", "neural_language"} == set(config_types())
    assert set(FIGURES) <= set(config_types())
    assert config_types()["vary"] is VaryConfig
