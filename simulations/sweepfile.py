"""Sweep files: a custom sweep of one experiment, written in TOML.

A sweep file names an experiment of :data:`lowrank_theory.simulations.experiments.EXPERIMENTS`, the seeds, and
a grid: the values each config field takes. The sweep is the Cartesian product of the grid (the
last field varies fastest); fields not in the grid keep their defaults::

    experiment = "phase"        # vary, phase, rate, landscape or schemes
    seeds = 3                   # seeds 0, 1, 2; or a list: seeds = [0, 5, 9]

    [grid]
    d = 50                      # one value ...
    T = [1, 2, 3, 4]            # ... or a list of values
    k = [1, 5]
    # a tuple field takes a list as one value, a list of lists as several:
    # n_grid = [[20, 100, 1000], [50, 500]]

    [options]                   # keyword options of the experiment's run function, if any

``lowrank-theory reproduce --config FILE.toml`` runs it through the runner (resume, executors,
figures), by default into ``results/<name>`` where ``<name>`` is the file's stem made safe
(:func:`output_name`). The file is checked against the experiment's config type before anything
is written: an unknown field, a value of the wrong type (a float for an int field, a list for a
scalar field, a scalar inside a tuple field), an invalid combination, a seed outside
0..2**63-1, or more runs than :data:`~lowrank_theory.simulations.budget.MAX_RUNS` (counted as
the product of the axes' lengths and the seeds, before any config is built) raises
:class:`SweepFileError`, whose message names the field.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowrank_theory.simulations.budget import SweepTooLarge, check_run_count
from lowrank_theory.simulations.configs import MAX_SEED, ExperimentConfig, Sweep
from lowrank_theory.simulations.runner import Experiment

__all__ = ["SweepFile", "SweepFileError", "load_sweep_file", "parse_sweep", "field_types",
           "output_name", "parse_overrides", "with_overrides", "NEURAL_EXPERIMENTS",
           "parse_neural_sweep"]

#: Largest sweep file read: a grid that lists 10^5 values takes about a megabyte.
MAX_FILE_BYTES = 16 * 2**20
#: The keys a sweep file may hold at its top level.
TOP_LEVEL_KEYS: tuple[str, ...] = ("experiment", "seeds", "grid", "options")


class SweepFileError(ValueError):
    """A sweep file that cannot be run; the message names the file and the offending key."""


@dataclass(frozen=True)
class SweepFile:
    """A parsed, validated sweep file.

    Attributes
    ----------
    experiment : Experiment
        The experiment it runs.
    sweep : Sweep
        Its configs (the grid's Cartesian product) and seeds.
    options : dict
        Keyword options for the experiment's run function (``experiment.options``).
    source : str
        Where it came from (the file's path), for messages.
    """

    experiment: Experiment
    sweep: Sweep
    options: dict[str, Any] = field(default_factory=dict)
    source: str = "<sweep>"

    def __repr__(self) -> str:
        return (f"SweepFile(experiment={self.experiment.name!r}, "
                f"configs={len(self.sweep.configs)}, seeds={self.sweep.seeds}, "
                f"source={self.source!r})")


def field_types(config_type: type[ExperimentConfig]) -> dict[str, Any]:
    """The fields of ``config_type`` and their types (``int``, ``float``, ``tuple[int, ...]``...).

    Examples
    --------
    >>> from lowrank_theory.simulations.configs import RateConfig
    >>> field_types(RateConfig)["n_grid"]
    tuple[int, ...]
    """
    hints = typing.get_type_hints(config_type)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_type)}


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _scalar(key: str, hint: Any, value: Any) -> Any:
    """``value`` as the scalar type ``hint``; an int for a float field becomes a float."""
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        # An int for a float field is what a reader means (sigma = 1); stored as a float, it
        # hashes like the default 1.0 would.
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - configs hold only the types above
        raise SweepFileError(f"{key}: fields of type {hint} cannot be set from a sweep file")
    if not ok:
        what = {bool: "true or false", int: "an integer", float: "a number",
                str: "a string"}[hint]
        raise SweepFileError(f"{key} must be {what}, got {_describe(value)}")
    return value


def _tuple_value(key: str, hint: Any, value: Any) -> tuple:
    args = typing.get_args(hint)
    if not isinstance(value, list):
        raise SweepFileError(f"{key} is a tuple field: write each value as a list, e.g. "
                             f"{key.split('.')[-1]} = [[1, 2, 3]], got {_describe(value)}")
    if not (len(args) == 2 and args[1] is Ellipsis) and len(args) != len(value):
        raise SweepFileError(f"{key} takes {len(args)} items, got {_describe(value)}")
    items = [args[0] if args[-1] is Ellipsis else args[i] for i in range(len(value))]
    return tuple(_tuple_value(f"{key}[{i}]", item, v) if typing.get_origin(item) is tuple
                 else _scalar(f"{key}[{i}]", item, v)
                 for i, (item, v) in enumerate(zip(items, value)))


def _depth(hint: Any) -> int:
    """How many lists deep one value of the field ``hint`` is written (0 for a scalar)."""
    return 1 + _depth(typing.get_args(hint)[0]) if typing.get_origin(hint) is tuple else 0


def _list_depth(value: Any) -> int:
    return 1 + _list_depth(value[0]) if isinstance(value, list) and value else int(
        isinstance(value, list))


def _grid_values(key: str, hint: Any, value: Any) -> list[Any]:
    """The values a grid entry lists: one value, or a list of values, of type ``hint``."""
    is_tuple = typing.get_origin(hint) is tuple
    if is_tuple:
        several = _list_depth(value) > _depth(hint)
        values = value if several else [value]
        parsed = [_tuple_value(f"{key}[{i}]" if several else key, hint, v)
                  for i, v in enumerate(values)]
    else:
        values = value if isinstance(value, list) else [value]
        for i, v in enumerate(values):
            if isinstance(v, list | dict):
                raise SweepFileError(f"{key} takes one {hint.__name__} per value, got a "
                                     f"{type(v).__name__} at position {i}: {v!r}")
        parsed = [_scalar(f"{key}[{i}]" if isinstance(value, list) else key, hint, v)
                  for i, v in enumerate(values)]
    if not parsed:
        raise SweepFileError(f"{key} lists no values; give at least one")
    if len(set(parsed)) != len(parsed):
        raise SweepFileError(f"{key} lists a value twice: {value!r}")
    return parsed


def _owners(name: str, experiments: Mapping[str, Experiment]) -> list[str]:
    return [e for e, exp in experiments.items()
            if name in {f.name for f in dataclasses.fields(exp.config_type)}]


def _grid_axes(grid: Any, experiment: Experiment,
               experiments: Mapping[str, Experiment]) -> dict[str, list[Any]]:
    """The values of each field in the grid, checked one by one (no config is built yet)."""
    config_type = experiment.config_type
    if not isinstance(grid, dict):
        raise SweepFileError(f"grid must be a table ([grid]), got {_describe(grid)}")
    types = field_types(config_type)
    axes: dict[str, list[Any]] = {}
    for name, value in grid.items():
        if name not in types:
            owners = _owners(name, experiments)
            hint = (f"; {name!r} is a field of experiment(s) {', '.join(owners)}, not of "
                    f"{experiment.name!r}" if owners else "")
            raise SweepFileError(
                f"grid.{name}: {config_type.__name__} (experiment {experiment.name!r}) has no "
                f"field {name!r}{hint}. Its fields: {', '.join(types)}")
        axes[name] = _grid_values(f"grid.{name}", types[name], value)
    return axes


def _grid_configs(axes: Mapping[str, list[Any]],
                  config_type: type[ExperimentConfig]) -> tuple[ExperimentConfig, ...]:
    """The configs of the grid's points, the last field varying fastest."""
    configs = []
    for point in itertools.product(*axes.values()):
        values = dict(zip(axes, point))
        try:
            configs.append(config_type(**values))
        except (TypeError, ValueError) as exc:
            where = ", ".join(f"{k}={v!r}" for k, v in values.items()) or "the defaults"
            raise SweepFileError(f"grid point {where}: {exc}") from None
    return tuple(configs)


def _seed_count(seeds: Any) -> int:
    """How many seeds ``seeds`` stands for, without listing them."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise SweepFileError(f"seeds must be a number of seeds >= 1 or a list of seeds, "
                                 f"got {seeds}")
        return seeds
    if isinstance(seeds, list) and seeds:
        return len(seeds)
    raise SweepFileError(f"seeds must be a number of seeds (seeds = 3: seeds 0, 1, 2) or a "
                         f"non-empty list (seeds = [0, 5]), got {_describe(seeds)[:200]}")


def _parse_seeds(seeds: Any) -> tuple[int, ...]:
    _seed_count(seeds)  # the form: a count >= 1 or a non-empty list
    if not isinstance(seeds, list):
        return tuple(range(seeds))
    out = tuple(_scalar(f"seeds[{i}]", int, s) for i, s in enumerate(seeds))
    for i, seed in enumerate(out):
        if not 0 <= seed <= MAX_SEED:
            raise SweepFileError(f"seeds[{i}] must lie in 0..2**63-1, got {seed}")
    if len(set(out)) != len(out):
        shown = str(seeds) if len(seeds) <= 20 else f"{str(seeds[:20])[:-1]}, ...]"
        raise SweepFileError(f"seeds must be distinct non-negative integers, got {shown}")
    return out


def parse_sweep(data: Mapping[str, Any], experiments: Mapping[str, Experiment] | None = None,
                *, source: str = "<sweep>", force: bool = False) -> SweepFile:
    """Validate the contents of a sweep file and build its sweep.

    Parameters
    ----------
    data : mapping
        The parsed TOML (``experiment``, ``seeds``, ``grid`` and optional ``options``).
    experiments : mapping of str to Experiment, optional
        The experiments a file may name; default :data:`lowrank_theory.simulations.experiments.EXPERIMENTS`
        and the neural experiments (:func:`parse_neural_sweep`).
    source : str
        Where ``data`` came from, for messages.
    force : bool
        Allow more runs than :data:`~lowrank_theory.simulations.budget.MAX_RUNS`.

    Returns
    -------
    SweepFile

    Raises
    ------
    SweepFileError
        Naming ``source`` and the key at fault: an unknown experiment, field or option, a value
        of the wrong type, an invalid config (``k > d``), bad seeds, or too many runs (the
        grid's points times the seeds, counted before any config is built).

    Examples
    --------
    >>> spec = parse_sweep({"experiment": "phase", "seeds": 2, "grid": {"T": [2, 3], "k": 1}})
    >>> [(c.T, c.k) for c in spec.sweep.configs], spec.sweep.seeds
    ([(2, 1), (3, 1)], (0, 1))
    >>> parse_sweep({"experiment": "vary", "seeds": 1, "grid": {"solver": "exact"}})
    Traceback (most recent call last):
    lowrank_theory.simulations.sweepfile.SweepFileError: <sweep>: grid.solver: VaryConfig (experiment 'vary') has no field 'solver'; 'solver' is a field of experiment(s) phase, landscape, not of 'vary'. Its fields: d, T, N, n, k, sigma, rounds, ft_steps, ft_lr, family, family_seed, authors_quirks
    """
    if experiments is None:
        neural = parse_neural_sweep(data, source=source, force=force)
        if neural is not None:
            return neural
        from lowrank_theory.simulations.experiments import EXPERIMENTS as experiments
    try:
        unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
        if unknown:
            raise SweepFileError(f"unknown key(s) {', '.join(unknown)}; a sweep file holds "
                                 f"{', '.join(TOP_LEVEL_KEYS)}")
        for key in ("experiment", "seeds"):
            if key not in data:
                raise SweepFileError(f"missing {key!r}")
        name = data["experiment"]
        if not isinstance(name, str) or name not in experiments:
            raise SweepFileError(f"experiment must be one of {', '.join(experiments)} (a "
                                 f"string), got {_describe(name)[:200]}")
        experiment = experiments[name]
        axes = _grid_axes(data.get("grid", {}), experiment, experiments)
        try:
            check_run_count(math.prod(len(values) for values in axes.values()),
                            _seed_count(data["seeds"]), force=force, what="the grid")
        except SweepTooLarge as exc:
            raise SweepFileError(str(exc)) from None
        configs = _grid_configs(axes, experiment.config_type)
        seeds = _parse_seeds(data["seeds"])
        options = data.get("options", {})
        if not isinstance(options, dict):
            raise SweepFileError(f"options must be a table ([options]), got {_describe(options)}")
        bad = [k for k in options if k not in experiment.options]
        if bad:
            raise SweepFileError(f"options.{bad[0]}: experiment {name!r} accepts "
                                 f"{', '.join(experiment.options) or 'no options'}")
        try:
            sweep = Sweep(configs, seeds)
        except (TypeError, ValueError) as exc:
            raise SweepFileError(str(exc)) from None
    except SweepFileError as exc:
        raise SweepFileError(f"{source}: {exc}") from None
    return SweepFile(experiment, sweep, dict(options), source)


def load_sweep_file(path: str | os.PathLike,
                    experiments: Mapping[str, Experiment] | None = None, *,
                    force: bool = False,
                    overrides: Mapping[str, Any] | None = None) -> SweepFile:
    """Read and validate the sweep file at ``path`` (see the module notes for its format).

    Nothing is written: run the result with ``run_experiment(spec.experiment, out,
    sweep=spec.sweep, options=spec.options)``, or with ``lowrank-theory reproduce --config``.
    ``force`` is passed on to :func:`parse_sweep`; ``overrides`` (grid entries, from
    :func:`parse_overrides`) replace or extend its grid.

    Raises
    ------
    SweepFileError
        If the file cannot be read, is not valid TOML, or fails :func:`parse_sweep`.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:  # bounded: /dev/zero is a file name too
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise SweepFileError(f"{path}: more than {MAX_FILE_BYTES:,} bytes; a sweep file "
                                 "lists values, not data")
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise SweepFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SweepFileError(f"{path}: not valid TOML ({str(exc)[:300]})") from None
    except RecursionError:
        raise SweepFileError(f"{path}: not valid TOML (nested too deeply)") from None
    data = with_overrides(data, overrides)
    return parse_sweep(data, experiments, source=str(path) + (" with --set" if overrides else ""),
                       force=force)


def output_name(path: str | os.PathLike) -> str:
    """The name of a sweep file's default output folder: its stem, made safe as one name.

    Separators and other characters outside letters, digits, ``_``, ``-`` and ``.`` become
    ``_``; leading and trailing dots go, so the name is never ``.``, ``..`` or hidden; an empty
    result is ``sweep``.

    Examples
    --------
    >>> output_name("examples/recovery_d50.toml"), output_name("...toml"), output_name("..toml")
    ('recovery_d50', 'sweep', 'sweep')
    >>> output_name("my sweep (v2).toml")
    'my_sweep_v2'
    """
    name = Path(path).name
    stem = name[:-len(".toml")] if name.lower().endswith(".toml") else Path(name).stem
    safe = re.sub(r"[^\w.-]+", "_", stem).strip("._")
    return safe[:100] or "sweep"


def _override_values(field: str, text: str) -> list[Any]:
    """The values of one ``--set FIELD=VALUES``: TOML values separated by commas.

    A bare word is a string (``family=per-seed``); a tuple field's value is written in
    brackets (``n_grid=[20,50],[100,200]``).
    """
    try:
        return tomllib.loads(f"v = [{text}]")["v"]
    except tomllib.TOMLDecodeError:
        pass
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            values.append(tomllib.loads(f"v = {part}")["v"])
        except tomllib.TOMLDecodeError:
            if not part or any(c in part for c in "[]{}\"'="):
                raise SweepFileError(f"--set {field}={text}: cannot read {part!r} as a value; "
                                     "write numbers, true/false, words, or [a, b] for a "
                                     "tuple field") from None
            values.append(part)
    return values


def parse_overrides(items: Sequence[str]) -> dict[str, list[Any]]:
    """Grid entries from ``--set FIELD=V1,V2`` items (Hydra's multirun overrides).

    Each item sets one field to the comma-separated values (TOML syntax; a bare word is a
    string). The result is a sweep file's ``[grid]`` table, validated with it by
    :func:`parse_sweep`.

    Raises
    ------
    SweepFileError
        If an item is not ``FIELD=VALUES``, names a field twice, or has a value that cannot be
        read.

    Examples
    --------
    >>> parse_overrides(["sigma=0.01,0.1,1", "T=3", "family=per-seed"])
    {'sigma': [0.01, 0.1, 1], 'T': [3], 'family': ['per-seed']}
    >>> parse_overrides(["n_grid=[20, 50],[100]"])
    {'n_grid': [[20, 50], [100]]}
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        field_name, sep, text = item.partition("=")
        field_name = field_name.strip()
        if not sep or not field_name.isidentifier() or not text.strip():
            raise SweepFileError(f"--set {item!r}: write FIELD=VALUE or FIELD=V1,V2,... "
                                 "(e.g. --set sigma=0.01,0.1,1)")
        if field_name in grid:
            raise SweepFileError(f"--set {field_name}: the field is set twice; give all its "
                                 f"values in one --set {field_name}=V1,V2")
        grid[field_name] = _override_values(field_name, text)
    return grid

# --------------------------------------------------------------------------- neural sweep files
#: The neural experiments a sweep file may name (their runner experiments need torch).
NEURAL_EXPERIMENTS: tuple[str, ...] = ("shallow", "vision", "language")
#: Top-level keys of a neural sweep file only, and the config field each sets.
NEURAL_KEYS: dict[str, str] = {"size": "preset", "steps_scale": "steps_scale", "device": ""}


def with_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any] | None
                   ) -> Mapping[str, Any]:
    """``data`` (a sweep file's contents) with ``overrides`` replacing or adding grid entries."""
    if not overrides:
        return data
    grid = data.get("grid", {})
    return {**data, "grid": {**grid, **overrides} if isinstance(grid, dict) else grid}


def _neural_grid(grid: Any, base: ExperimentConfig, name: str, n_seeds: int, *,
                 force: bool = False) -> tuple[ExperimentConfig, ...]:
    """The configs of a neural grid: ``replace(base, **point)`` for each point of it.

    The points times ``n_seeds`` are counted before any config is built
    (:func:`~lowrank_theory.simulations.budget.check_run_count`).
    """
    config_type = type(base)
    if not isinstance(grid, dict):
        raise SweepFileError(f"grid must be a table ([grid]), got {_describe(grid)}")
    types = field_types(config_type)
    axes: dict[str, list[Any]] = {}
    for key, value in grid.items():
        if key not in types:
            raise SweepFileError(f"grid.{key}: {config_type.__name__} (experiment {name!r}) has "
                                 f"no field {key!r}. Its fields: {', '.join(types)}")
        if key in ("preset", "steps_scale"):
            top = "size" if key == "preset" else key
            raise SweepFileError(f"grid.{key}: set it with the top-level key {top} = ..., which "
                                 "also scales the preset's step budgets")
        axes[key] = _grid_values(f"grid.{key}", types[key], value)
    try:
        check_run_count(math.prod(len(values) for values in axes.values()), n_seeds,
                        force=force, what="the grid")
    except SweepTooLarge as exc:
        raise SweepFileError(str(exc)) from None
    configs = []
    for point in itertools.product(*axes.values()):
        values = dict(zip(axes, point))
        try:
            configs.append(dataclasses.replace(base, **values))
        except (TypeError, ValueError) as exc:
            where = ", ".join(f"{k}={v!r}" for k, v in values.items()) or "the preset"
            raise SweepFileError(f"grid point {where}: {exc}") from None
    return tuple(configs)


def parse_neural_sweep(data: Mapping[str, Any], *, source: str = "<sweep>",
                       force: bool = False) -> SweepFile | None:
    """Validate a neural sweep file and build its sweep; None when ``data`` is not one.

    A neural sweep file names ``experiment = "shallow"``, ``"vision"`` or ``"language"``, and
    may set ``size`` (the preset, ``cpu`` by default), ``steps_scale`` (multiplies the preset's
    step budgets, 1 by default), ``device`` (an option of the run) and ``seeds`` (default: the
    preset's). The grid starts from the preset's default point
    (:func:`~lowrank_theory.simulations.neural.configs.preset_base`) and may set any config
    field; vision runs one config per retraining method, as its preset does.

    Raises
    ------
    SweepFileError
        Naming ``source`` and the key at fault, as :func:`parse_sweep` does; also when a linear
        experiment's file holds ``size``, ``steps_scale`` or ``device``, or when torch is
        missing.

    Examples
    --------
    >>> parse_neural_sweep({"experiment": "phase", "seeds": 1}) is None
    True
    >>> parse_neural_sweep({"experiment": "shallow", "size": "huge", "grid": {"d": [5, 15]}})
    Traceback (most recent call last):
    lowrank_theory.simulations.sweepfile.SweepFileError: <sweep>: size must be one of 'cpu', 'paper', got str 'huge'
    >>> parse_neural_sweep({"experiment": "phase", "seeds": 1, "size": "cpu"})
    Traceback (most recent call last):
    lowrank_theory.simulations.sweepfile.SweepFileError: <sweep>: size: only the neural experiments (shallow, vision, language) take these keys
    """
    name = data.get("experiment")
    if name not in NEURAL_EXPERIMENTS:
        misplaced = [k for k in NEURAL_KEYS if k in data]
        if misplaced and isinstance(name, str):
            raise SweepFileError(f"{source}: {', '.join(misplaced)}: only the neural experiments "
                                 f"({', '.join(NEURAL_EXPERIMENTS)}) take these keys")
        return None
    from lowrank_theory.simulations.neural.configs import (
        PRESETS,
        preset_base,
        preset_sweep,
        unit_configs,
    )

    try:
        unknown = [k for k in data if k not in (*TOP_LEVEL_KEYS, *NEURAL_KEYS)]
        if unknown:
            raise SweepFileError(f"unknown key(s) {', '.join(unknown)}; a neural sweep file "
                                 f"holds {', '.join((*TOP_LEVEL_KEYS, *NEURAL_KEYS))}")
        size = data.get("size", "cpu")
        if size not in PRESETS:
            raise SweepFileError(f"size must be one of {', '.join(map(repr, PRESETS))}, got "
                                 f"{_describe(size)}")
        scale = _scalar("steps_scale", float, data.get("steps_scale", 1.0))
        if not (math.isfinite(scale) and scale > 0):
            raise SweepFileError(f"steps_scale must be a finite number > 0, got {scale}")
        base = preset_base(name, size, scale)
        seeds = (_parse_seeds(data["seeds"]) if "seeds" in data
                 else preset_sweep(name, size, scale).seeds)
        configs = unit_configs(name, _neural_grid(data.get("grid", {}), base, name, len(seeds),
                                                  force=force))
        options = data.get("options", {})
        if not isinstance(options, dict):
            raise SweepFileError(f"options must be a table ([options]), got "
                                 f"{_describe(options)}")
        options = dict(options)
        if "device" in data:
            options["device"] = _scalar("device", str, data["device"])
        try:
            from lowrank_theory.simulations.neural.experiments import EXPERIMENTS
        except ImportError as exc:
            raise SweepFileError(f"experiment {name!r} needs torch ({exc}); install it with "
                                 "pip install 'lowrank-theory[torch]' (make install-torch in a "
                                 "clone)") from None
        experiment = EXPERIMENTS[name]
        bad = [k for k in options if k not in experiment.options]
        if bad:
            raise SweepFileError(f"options.{bad[0]}: experiment {name!r} accepts "
                                 f"{', '.join(experiment.options)}")
        try:
            sweep = Sweep(configs, seeds)
        except (TypeError, ValueError) as exc:
            raise SweepFileError(str(exc)) from None
    except SweepFileError as exc:
        raise SweepFileError(f"{source}: {exc}") from None
    return SweepFile(experiment, sweep, options, source)
