"""Run experiment sweeps: resumable, atomic, deterministic, on local processes or dask.

Layout under the output folder ``out``::

    out/.lowrank-theory.lock                       held while a sweep writes (pid of the holder)
    out/<experiment>/configs/<config_hash>.json    the config of each hash (provenance)
    out/<experiment>/runs/<config_hash>-<seeds>.csv   the rows of one finished unit of work
    out/<experiment>/runs/<config_hash>-<seeds>.json  its sidecar: name, size, SHA-256, rows,
                                                   dtypes, unit, code version; written last
    out/<experiment>.csv, out/<experiment>.parquet the combined tidy table (Parquet with pyarrow)
    out/<experiment>.json                          their manifest: digests, dtypes, inputs

A unit of work is one config with one seed (or, for experiments that batch seeds as an array
axis, one config with all its seeds). Files are written atomically and run files checked
against their sidecars (:mod:`lowrank_theory.simulations.store`): a killed sweep leaves only complete run
files; rerunning it skips them, and recomputes, with a warning naming it, any run file that is
incomplete, corrupt, or another unit's (copied over this unit's name). A config record whose
content is not the config of its hash is rewritten, with a warning. A changed config has a new hash, hence new file names, and the combined
table holds only the hashes of the current sweep, so old rows are never mixed in. A resumed unit
computed by another version of the code is kept but reported (a warning and the summary). The
combined table is rewritten only when its run files changed.

Determinism: a unit's rows depend only on (config, seeds); workers run single-threaded BLAS
(:mod:`lowrank_theory.simulations.executors`); the combined table is assembled in sweep order, not completion
order. So the same seeds give identical tables whatever the number of jobs or the executor (up
to the provenance column ``timestamp``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pickle
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from lowrank_theory.simulations.configs import SIZES, ExperimentConfig, Sweep
from lowrank_theory.simulations.executors import (
    EXECUTORS,
    DaskExecutor,
    LocalExecutor,
    RunFunction,
    SequentialExecutor,
    Unit,
    make_executor,
)
from lowrank_theory.simulations.outdir import (
    OutputDirError,
    OutputLocked,
    atomic_write_text,
    check_output_dir,
    ensure_folder,
    output_lock,
    remove_stale_temporaries,
)
from lowrank_theory.simulations.store import (
    InvalidRunFile,
    RunFileWarning,
    RunRecord,
    check_run,
    inputs_digest,
    read_run,
    refuse_non_files,
    tables_current,
    warn_run_file,
    write_run,
    write_tables,
)

from lowrank_theory._repr import summary_repr

__all__ = [
    "EXECUTORS", "KEY_COLUMNS", "PROVENANCE_COLUMNS", "DaskExecutor", "Experiment",
    "LocalExecutor", "OutputDirError", "OutputLocked", "RunFileWarning", "SequentialExecutor",
    "SweepResult", "Unit", "atomic_write_text", "check_output_dir", "code_version",
    "drop_provenance", "git_commit", "make_executor", "output_lock", "package_version",
    "run_experiment", "unit_identity", "units_of",
]

#: Columns that record where a row came from rather than what was computed. ``timestamp``
#: differs between two otherwise identical runs; determinism checks leave it out.
PROVENANCE_COLUMNS: tuple[str, ...] = ("package_version", "git_commit", "timestamp")
#: Columns that identify a row's run; they lead every table.
KEY_COLUMNS: tuple[str, ...] = ("experiment", "config_hash", "seed")


@dataclass(frozen=True)
class Experiment:
    """An experiment: a function from (config, seeds) to tidy rows, and its two sweeps.

    Parameters
    ----------
    name : str
        Short name, used by ``--only`` and for file names.
    title : str
        One-line description.
    claim : str
        The paper's claim (or the extension) the experiment tests.
    run : callable
        ``run(config, seeds, **options) -> DataFrame`` with a ``seed`` column; must depend on
        nothing but its arguments (no global RNG), and be importable by worker processes.
    quick, full : Sweep
        The configs and seeds of each size.
    seeds_per_unit : int or None
        Seeds handed to one call of ``run``; ``None`` hands all of a config's seeds at once
        (for run functions that batch seeds as an array axis).
    options : tuple of str
        Keyword arguments ``run`` accepts beyond ``(config, seeds)``: execution options such
        as ``"device"`` or ``"data_dir"``, which change where and how a unit runs but not its
        rows, so they do not enter the config hash.
    config_type : type, optional
        The :class:`~lowrank_theory.simulations.configs.ExperimentConfig` subclass ``run`` takes; default: the
        type of the first config of ``quick``. Every config of ``quick``, ``full`` and of a
        sweep handed to :func:`run_experiment` must be an instance of it.
    """

    name: str
    title: str
    claim: str
    run: RunFunction
    quick: Sweep
    full: Sweep
    seeds_per_unit: int | None = 1
    options: tuple[str, ...] = field(default=())
    config_type: type[ExperimentConfig] | None = None

    def __post_init__(self) -> None:
        if self.config_type is None:
            object.__setattr__(self, "config_type", type(self.quick.configs[0]))
        if not (isinstance(self.config_type, type)
                and issubclass(self.config_type, ExperimentConfig)):
            raise TypeError(f"config_type must be an ExperimentConfig subclass, got "
                            f"{self.config_type!r}")
        for size in SIZES:
            self.check_sweep(self.sweep(size), size)
        if not isinstance(self.options, tuple) or not all(
                isinstance(o, str) and o.isidentifier() for o in self.options):
            raise TypeError(f"options must be a tuple of keyword names, got {self.options!r}")
        clash = {"config", "seeds"} & set(self.options)
        if clash:
            raise ValueError(f"options cannot be named {sorted(clash)}: run receives those "
                             "positionally")

    def sweep(self, size: str) -> Sweep:
        """Return the sweep of ``size`` (``"quick"`` or ``"full"``)."""
        if size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
        return self.quick if size == "quick" else self.full

    def check_sweep(self, sweep: Sweep, name: str = "sweep") -> Sweep:
        """Return ``sweep`` after checking that it is a Sweep of this experiment's configs.

        Raises
        ------
        TypeError
            If ``sweep`` is not a :class:`~lowrank_theory.simulations.configs.Sweep`, or one of its configs is
            not a ``config_type`` (the error names the config and the type expected).

        Examples
        --------
        >>> from lowrank_theory.simulations.configs import PhaseConfig, VaryConfig
        >>> toy = Experiment("toy", "toy", "none", print, Sweep((VaryConfig(),), (0,)),
        ...                  Sweep((VaryConfig(),), (0,)))
        >>> toy.check_sweep(Sweep((PhaseConfig(),), seeds=(0,)))
        Traceback (most recent call last):
        TypeError: sweep.configs[0] is a PhaseConfig, but experiment 'toy' runs VaryConfig configs; build the sweep from VaryConfig(...)
        """
        if not isinstance(sweep, Sweep):
            raise TypeError(f"{name} must be a lowrank_theory.simulations.configs.Sweep, got "
                            f"{type(sweep).__name__}")
        want = self.config_type
        for i, config in enumerate(sweep.configs):
            if not isinstance(config, want):
                raise TypeError(f"{name}.configs[{i}] is a {type(config).__name__}, but "
                                f"experiment {self.name!r} runs {want.__name__} configs; build "
                                f"the sweep from {want.__name__}(...)")
        return sweep


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: counts, output paths, wall time, and what needs the reader's eye.

    ``invalid`` names the run files that failed validation and were recomputed;
    ``other_code`` the resumed units computed by another code version (``key (what differs)``).
    """

    experiment: str
    n_units: int
    n_computed: int
    n_skipped: int
    n_runs: int
    tables: tuple[Path, ...]
    seconds: float
    invalid: tuple[str, ...] = ()
    other_code: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return summary_repr(type(self).__name__, {
            "experiment": self.experiment, "units": self.n_units, "computed": self.n_computed,
            "skipped": self.n_skipped, "seconds": round(self.seconds, 1),
            "tables": [str(p) for p in self.tables]})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: counts, table paths (as strings), seconds, files to look at."""
        return {"experiment": self.experiment, "units": self.n_units,
                "computed": self.n_computed, "skipped": self.n_skipped, "runs": self.n_runs,
                "tables": [str(p) for p in self.tables], "seconds": self.seconds,
                "invalid": list(self.invalid), "other_code": list(self.other_code)}

    def summary(self) -> str:
        """A line for the terminal, plus a line for each kind of unit to look at."""
        tables = ", ".join(str(p) for p in self.tables)
        runs = "" if self.n_runs == self.n_units else f" of {self.n_runs} (config, seed) runs"
        lines = [f"{self.experiment}: {self.n_units} units{runs}: {self.n_computed} computed, "
                 f"{self.n_skipped} skipped (finished earlier) in {self.seconds:.1f} s -> {tables}"]
        if self.invalid:
            lines.append(f"  recomputed {len(self.invalid)} invalid run file(s): "
                         f"{', '.join(self.invalid)}")
        if self.other_code:
            lines.append(f"  resumed {len(self.other_code)} unit(s) computed by other code: "
                         f"{', '.join(self.other_code)}")
        return "\n".join(lines)


def units_of(sweep: Sweep, seeds_per_unit: int | None = 1) -> list[Unit]:
    """Split a sweep into units, configs outermost, in a fixed order.

    Examples
    --------
    >>> from lowrank_theory.simulations.configs import PhaseConfig
    >>> sweep = Sweep((PhaseConfig(T=2), PhaseConfig(T=3)), seeds=(0, 1, 2))
    >>> [u.seeds for u in units_of(sweep, 2)]
    [(0, 1), (2,), (0, 1), (2,)]
    """
    per = len(sweep.seeds) if seeds_per_unit is None else seeds_per_unit
    return [
        Unit(config, sweep.seeds[i : i + per])
        for config in sweep.configs
        for i in range(0, len(sweep.seeds), per)
    ]


# --------------------------------------------------------------------------- provenance
@functools.cache
def package_version() -> str:
    """Installed version of lowrank-theory, or ``"unknown"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lowrank-theory")
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def git_commit() -> str:
    """Commit of the source tree (``+dirty`` when tracked files changed), or ``"unknown"``."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def code_version(config: ExperimentConfig) -> dict[str, Any]:
    """What computes a unit of ``config``: package version, git commit and the config's SCHEMA."""
    return {"package_version": package_version(), "git_commit": git_commit(),
            "schema": config.SCHEMA}


def _version_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``"git_commit 0123456789ab -> 0123456789ab+dirty"``: what differs, commits shortened."""
    def short(value: Any) -> str:
        text = str(value)
        commit, plus, rest = text.partition("+")
        return commit[:12] + plus + rest if len(commit) == 40 else text

    return ", ".join(f"{k} {short(old.get(k))} -> {short(new[k])}"
                     for k in new if old.get(k) != new[k])


# --------------------------------------------------------------------------- executors
# --------------------------------------------------------------------------- sweeps
def _with_keys(frame: pd.DataFrame, experiment: str, config: ExperimentConfig) -> pd.DataFrame:
    """Prefix the key and config columns, append provenance; the row order is kept."""
    front = {"experiment": experiment, "config_hash": config.config_hash()}
    body = frame.drop(columns=[c for c in frame.columns if c in front])
    config_cols = {k: v for k, v in config.columns().items() if k not in body.columns}
    out = pd.DataFrame({**front, "seed": body["seed"].to_numpy()}, index=body.index)
    for name, value in config_cols.items():
        out[name] = value
    out = pd.concat([out, body.drop(columns="seed")], axis=1)
    out["package_version"] = package_version()
    out["git_commit"] = git_commit()
    out["timestamp"] = pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")
    return out.reset_index(drop=True)


def _bind_options(experiment: Experiment, options: Mapping[str, Any] | None,
                  executor: Any) -> RunFunction:
    """Return ``experiment.run`` with ``options`` bound, after checking them."""
    if options is None:
        return experiment.run
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a mapping of keyword names to values, got "
                        f"{type(options).__name__}")
    unknown = [name for name in options if name not in experiment.options]
    if unknown:
        accepted = ", ".join(experiment.options) or "none"
        raise ValueError(f"options {unknown} are not accepted by experiment "
                         f"{experiment.name!r} (it accepts: {accepted})")
    if executor is not None and not isinstance(executor, SequentialExecutor):
        for name, value in options.items():
            try:
                pickle.dumps(value)
            except Exception as exc:
                raise TypeError(f"option {name!r} must be picklable to reach worker processes "
                                f"({type(value).__name__}: {exc})") from None
    return functools.partial(experiment.run, **options) if options else experiment.run


def _config_record(experiment: Experiment, config: ExperimentConfig) -> str:
    """The text of ``configs/<hash>.json``: what the config of that hash is (provenance)."""
    record = {"experiment": experiment.name, "type": type(config).__name__,
              "schema": config.SCHEMA, "config": config.to_dict()}
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def _write_configs(experiment: Experiment, sweep: Sweep, directory: Path) -> None:
    """Write each config's record; rewrite, with a warning, one that holds anything else."""
    for config in sweep.configs:
        path = directory / f"{config.config_hash()}.json"
        text = _config_record(experiment, config)
        if os.path.lexists(path) and not path.is_file():
            raise OutputDirError(f"{path} is not a regular file, where the runner keeps the "
                                 "record of a config; move it away and rerun")
        try:
            old = path.read_bytes() if path.exists() else None
        except OSError:
            old = b""
        if old is None or old == text.encode():
            if old is None:
                atomic_write_text(path, text)
            continue
        # The record names its config: garbage or another config's record here would pass
        # the wrong provenance on to whoever reads it.
        warn_run_file(f"config record {path} did not hold the config of hash "
                      f"{config.config_hash()} (garbage, or another config's record); "
                      "rewrote it")
        atomic_write_text(path, text)


def unit_identity(experiment: Experiment, unit: Unit) -> dict[str, Any]:
    """What a unit's sidecar and rows must show: its experiment, config hash and seeds."""
    return {"experiment": experiment.name, "config_hash": unit.config.config_hash(),
            "seed": list(unit.seeds)}


def _check_runs(experiment: Experiment, units: Sequence[Unit], paths: Sequence[Path]
                ) -> tuple[list[RunRecord | None], list[str], list[str]]:
    """Validate the run files: records (None: to compute), invalid files, other-code units."""
    records: list[RunRecord | None] = []
    invalid, other_code = [], []
    for unit, path in zip(units, paths, strict=True):
        try:
            record = check_run(path, unit_identity(experiment, unit))
        except InvalidRunFile as exc:
            warn_run_file(f"{exc}; recomputing it")
            invalid.append(path.name)
            record = None
        if record is not None and record.code != (current := code_version(unit.config)):
            other_code.append(f"{unit.key} ({_version_change(record.code, current)})")
        records.append(record)
    if other_code:
        warn_run_file(f"{len(other_code)} resumed unit(s) in {paths[0].parent} were computed by "
                      f"other code: {', '.join(other_code)}; delete their files to recompute")
    return records, invalid, other_code


def run_experiment(
    experiment: Experiment,
    out: str | os.PathLike = "results",
    *,
    size: str = "quick",
    sweep: Sweep | None = None,
    executor: Any = None,
    progress: bool | None = None,
    options: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Run the units of one experiment that have not finished yet, then write its table.

    Parameters
    ----------
    experiment : Experiment
        What to run.
    out : path-like
        Output folder (created if missing; locked while the sweep writes into it).
    size : {"quick", "full"}
        Which of the experiment's sweeps to run, unless ``sweep`` is given.
    sweep : Sweep, optional
        An explicit sweep (tests, custom studies).
    executor : SequentialExecutor, LocalExecutor or DaskExecutor, optional
        An entered executor; the default runs in this process.
    progress : bool or None
        Show a progress bar; ``None`` shows it only when stderr is a terminal.
    options : mapping, optional
        Keyword arguments for ``experiment.run`` (names from ``experiment.options``; picklable
        when an executor with worker processes runs them). They do not enter the config hash.

    Returns
    -------
    SweepResult

    Raises
    ------
    ValueError
        If ``size`` is not a known size, or an option is not in ``experiment.options``
        (before anything is written).
    TypeError
        If a config of ``sweep`` is not of ``experiment.config_type`` (before anything is
        written).
    OutputDirError
        If ``out`` is not a writable folder, or a path the runner keeps its files at is taken
        by a folder or file of the wrong kind (before anything is computed).
    OutputLocked
        If another process is writing into ``out``.

    Warns
    -----
    RunFileWarning
        For each run file that fails validation (it is recomputed), and for resumed units
        computed by another code version.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    sweep = experiment.sweep(size) if sweep is None else experiment.check_sweep(sweep)
    run = _bind_options(experiment, options, executor)
    out = check_output_dir(out)
    with output_lock(out):
        exp_dir = out / experiment.name
        runs_dir = exp_dir / "runs"
        for directory in (runs_dir, exp_dir / "configs"):
            ensure_folder(directory)
        refuse_non_files(*(out / f"{experiment.name}{suffix}" for suffix in (".csv", ".parquet",
                                                                             ".json")),
                         kind="a combined table")
        for directory in (runs_dir, exp_dir / "configs", out):
            remove_stale_temporaries(directory)
        _write_configs(experiment, sweep, exp_dir / "configs")

        units = units_of(sweep, experiment.seeds_per_unit)
        paths = [runs_dir / f"{unit.key}.csv" for unit in units]
        records, invalid, other_code = _check_runs(experiment, units, paths)
        todo = [i for i, record in enumerate(records) if record is None]
        if todo:
            own = executor is None
            executor = SequentialExecutor() if own else executor
            disable = None if progress is None else not progress
            bar = tqdm(total=len(todo), desc=experiment.name, unit="run", disable=disable,
                       leave=False)
            with executor if own else contextlib.nullcontext(), bar:
                pending = [units[i] for i in todo]
                for j, frame in executor.imap_unordered(run, pending):
                    config = pending[j].config
                    records[todo[j]] = write_run(paths[todo[j]],
                                                 _with_keys(frame, experiment.name, config),
                                                 code_version(config),
                                                 unit_identity(experiment, pending[j]))
                    bar.update(1)

        done: list[RunRecord] = records  # type: ignore[assignment]  # every unit has a record now
        inputs = inputs_digest(done)
        tables = tables_current(out / experiment.name, inputs)
        if tables is None:
            table = pd.concat([read_run(record) for record in done], ignore_index=True)
            tables = write_tables(table, out / experiment.name, inputs)
    return SweepResult(experiment.name, len(units), len(todo), len(units) - len(todo),
                       sum(len(u.seeds) for u in units), tables, time.perf_counter() - start,
                       tuple(invalid), tuple(other_code))


def drop_provenance(table: pd.DataFrame) -> pd.DataFrame:
    """Return ``table`` without the provenance columns (for comparing runs)."""
    return table.drop(columns=[c for c in PROVENANCE_COLUMNS if c in table.columns])
