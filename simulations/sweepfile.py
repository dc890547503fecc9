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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowrank_theory.simulations.budget import SweepTooLarge, check_run_count
from lowrank_theory.simulations.configs import MAX_SEED, ExperimentConfig, Sweep
from lowrank_theory.simulations.runner import Experiment

__all__ = ["SweepFile", "SweepFileError", "load_sweep_file", "parse_sweep", "field_types",
           "output_name"]

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
    (item, _) = typing.get_args(hint)
    if not isinstance(value, list):
        raise SweepFileError(f"{key} is a tuple field: write each value as a list, e.g. "
                             f"{key.split('.')[-1]} = [[1, 2, 3]], got {_describe(value)}")
    return tuple(_scalar(f"{key}[{i}]", item, v) for i, v in enumerate(value))


def _grid_values(key: str, hint: Any, value: Any) -> list[Any]:
    """The values a grid entry lists: one value, or a list of values, of type ``hint``."""
    is_tuple = typing.get_origin(hint) is tuple
    if is_tuple:
        several = isinstance(value, list) and bool(value) and all(isinstance(v, list)
                                                                  for v in value)
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
        The experiments a file may name; default :data:`lowrank_theory.simulations.experiments.EXPERIMENTS`.
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
                    force: bool = False) -> SweepFile:
    """Read and validate the sweep file at ``path`` (see the module notes for its format).

    Nothing is written: run the result with ``run_experiment(spec.experiment, out,
    sweep=spec.sweep, options=spec.options)``, or with ``lowrank-theory reproduce --config``.
    ``force`` is passed on to :func:`parse_sweep`.

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
    return parse_sweep(data, experiments, source=str(path), force=force)


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
