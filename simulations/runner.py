"""Run experiment sweeps: resumable, atomic, deterministic, on local processes or dask.

Layout under the output directory ``out``::

    out/<experiment>/configs/<config_hash>.json      the config of each hash (provenance)
    out/<experiment>/runs/<config_hash>-<seeds>.csv  one finished unit of work
    out/<experiment>.csv (and .parquet with pyarrow) the combined tidy table of the sweep

A unit of work is one config with one seed (or, for experiments that batch seeds as an array
axis, one config with all its seeds). Each finished unit is written to a temporary file and
renamed into place (``os.replace`` is atomic on POSIX), so a killed sweep leaves only complete
run files; rerunning it skips them. A changed config has a new hash, hence new file names, and
the combined table holds only the hashes of the current sweep, so old rows are never mixed in.

Determinism: a unit's rows depend only on (config, seeds); workers run single-threaded BLAS;
the combined table is assembled in sweep order, not completion order. So the same seeds give
identical tables whatever the number of jobs or the executor (up to the provenance column
``timestamp``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from simulations.configs import SIZES, ExperimentConfig, Sweep

#: Columns that record where a row came from rather than what was computed. ``timestamp``
#: differs between two otherwise identical runs; determinism checks leave it out.
PROVENANCE_COLUMNS: tuple[str, ...] = ("package_version", "git_commit", "timestamp")
#: Columns that identify a row's run; they lead every table.
KEY_COLUMNS: tuple[str, ...] = ("experiment", "config_hash", "seed")
#: Executors ``--executor`` accepts.
EXECUTORS: tuple[str, ...] = ("local", "dask")

RunFunction = Callable[[Any, tuple[int, ...]], pd.DataFrame]


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
        ``run(config, seeds) -> DataFrame`` with a ``seed`` column; must depend on nothing but
        its arguments (no global RNG), and be importable by worker processes.
    quick, full : Sweep
        The configs and seeds of each size.
    seeds_per_unit : int or None
        Seeds handed to one call of ``run``; ``None`` hands all of a config's seeds at once
        (for run functions that batch seeds as an array axis).
    options : tuple of str
        Keyword arguments ``run`` accepts beyond (config, seeds) (a device, a data folder);
        :func:`run_experiment` passes them through and rejects any other name.
    """

    name: str
    title: str
    claim: str
    run: RunFunction
    quick: Sweep
    full: Sweep
    seeds_per_unit: int | None = 1
    options: tuple[str, ...] = ()

    def sweep(self, size: str) -> Sweep:
        """Return the sweep of ``size`` (``"quick"`` or ``"full"``)."""
        if size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
        return self.quick if size == "quick" else self.full


@dataclass(frozen=True)
class Unit:
    """One unit of work: a config and the seeds one ``run`` call computes."""

    config: ExperimentConfig
    seeds: tuple[int, ...]

    @property
    def key(self) -> str:
        """File stem ``<config_hash>-<seed>[_<seed>...]``."""
        return f"{self.config.config_hash()}-{'_'.join(map(str, self.seeds))}"


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: counts, output paths and wall time."""

    experiment: str
    n_units: int
    n_computed: int
    n_skipped: int
    n_runs: int
    tables: tuple[Path, ...]
    seconds: float

    def summary(self) -> str:
        """One line for the terminal."""
        tables = ", ".join(str(p) for p in self.tables)
        runs = "" if self.n_runs == self.n_units else f" of {self.n_runs} (config, seed) runs"
        return (f"{self.experiment}: {self.n_units} units{runs}: {self.n_computed} computed, "
                f"{self.n_skipped} skipped (finished earlier) in {self.seconds:.1f} s -> {tables}")


def units_of(sweep: Sweep, seeds_per_unit: int | None = 1) -> list[Unit]:
    """Split a sweep into units, configs outermost, in a fixed order.

    Examples
    --------
    >>> from simulations.configs import PhaseConfig
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


# --------------------------------------------------------------------------- atomic files
def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV (``.csv``) or Parquet (``.parquet``) atomically."""
    if path.suffix == ".parquet":
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    else:
        atomic_write_text(path, frame.to_csv(index=False))


def _remove_stale_temporaries(directory: Path) -> None:
    # A SIGKILL between mkstemp and os.replace leaves a hidden temporary behind; it is never
    # read (only ``*.csv`` is), and the next sweep into the directory removes it.
    for tmp in directory.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --------------------------------------------------------------------------- executors
def _run_unit(run: RunFunction, config: ExperimentConfig, seeds: tuple[int, ...]) -> pd.DataFrame:
    """Worker entry point: one unit with single-threaded BLAS (see the module notes)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=1)
    with limits:
        frame = run(config, seeds)
    if not isinstance(frame, pd.DataFrame) or "seed" not in frame.columns:
        raise TypeError(f"{getattr(run, '__name__', run)} must return a DataFrame with a "
                        f"'seed' column; got {type(frame).__name__}")
    return frame


def _result_or_note(get: Callable[[], pd.DataFrame], unit: Unit) -> pd.DataFrame:
    """Call ``get``; if the run failed, name its config and seeds in the exception."""
    try:
        return get()
    except Exception as exc:
        exc.add_note(f"while running {unit.config!r} with seeds {unit.seeds}")
        raise


#: Environment variables that cap BLAS threads in freshly started worker processes.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class SequentialExecutor:
    """Runs units one after another in this process (``--jobs 1``)."""

    def __enter__(self) -> SequentialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap_unordered(self, run: RunFunction, units: Sequence[Unit]) -> Iterator[tuple[int, pd.DataFrame]]:
        """Yield ``(index, rows)`` for each unit as it finishes."""
        for i, unit in enumerate(units):
            yield i, _result_or_note(lambda u=unit: _run_unit(run, u.config, u.seeds), unit)


class LocalExecutor:
    """A pool of ``jobs`` local worker processes (started with ``spawn``, one BLAS thread each)."""

    def __init__(self, jobs: int) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive int, got {jobs!r}")
        self.jobs = jobs
        self._pool: Any = None
        self._saved_env: dict[str, str | None] = {}

    def __enter__(self) -> LocalExecutor:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Workers read these when their BLAS loads; restored on exit so the parent is unchanged.
        self._saved_env = {name: os.environ.get(name) for name in _THREAD_ENV}
        for name in _THREAD_ENV:
            os.environ.setdefault(name, "1")
        self._pool = ProcessPoolExecutor(max_workers=self.jobs,
                                         mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def imap_unordered(self, run: RunFunction, units: Sequence[Unit]) -> Iterator[tuple[int, pd.DataFrame]]:
        """Yield ``(index, rows)`` for each unit as it finishes, in completion order."""
        from concurrent.futures import as_completed

        futures = {self._pool.submit(_run_unit, run, u.config, u.seeds): i for i, u in enumerate(units)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                yield i, _result_or_note(future.result, units[i])
        finally:
            for future in futures:
                future.cancel()


class DaskExecutor:
    """Runs units on a dask.distributed cluster: ``scheduler`` address, or a new LocalCluster.

    Parameters
    ----------
    jobs : int
        Workers of the LocalCluster started when ``scheduler`` is None.
    scheduler : str or None
        Address of a running scheduler (``tcp://host:8786``).
    processes : bool
        LocalCluster option: worker processes (default) or threads of this process.
    """

    def __init__(self, jobs: int = 1, scheduler: str | None = None, *, processes: bool = True) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive int, got {jobs!r}")
        self.jobs, self.scheduler, self.processes = jobs, scheduler, processes
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> DaskExecutor:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("--executor dask needs dask.distributed: "
                              "pip install 'lowrank-theory[dask]'") from exc
        if self.scheduler is None:
            self._cluster = LocalCluster(n_workers=self.jobs, threads_per_worker=1,
                                         processes=self.processes, dashboard_address=None)
            self._client = Client(self._cluster)
        else:
            self._client = Client(self.scheduler)
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def imap_unordered(self, run: RunFunction, units: Sequence[Unit]) -> Iterator[tuple[int, pd.DataFrame]]:
        """Yield ``(index, rows)`` for each unit as it finishes on the cluster."""
        from distributed import as_completed

        futures = [self._client.submit(_run_unit, run, u.config, u.seeds, pure=False) for u in units]
        index = {future.key: i for i, future in enumerate(futures)}
        try:
            for future in as_completed(futures):
                i = index[future.key]
                yield i, _result_or_note(future.result, units[i])
        finally:
            self._client.cancel(futures)


def make_executor(kind: str = "local", jobs: int = 1, scheduler: str | None = None):
    """Return the executor ``--executor kind --jobs jobs [--scheduler address]`` asks for.

    ``local`` with one job runs in this process (no pool to start).
    """
    if kind not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}; got {kind!r}")
    if scheduler is not None and kind != "dask":
        raise ValueError("scheduler is only used with executor='dask'")
    if kind == "dask":
        return DaskExecutor(jobs, scheduler)
    return SequentialExecutor() if jobs == 1 else LocalExecutor(jobs)


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
        Output directory (created if missing).
    size : {"quick", "full"}
        Which of the experiment's sweeps to run, unless ``sweep`` is given.
    sweep : Sweep, optional
        An explicit sweep (tests, custom studies).
    executor : SequentialExecutor, LocalExecutor or DaskExecutor, optional
        An entered executor; the default runs in this process.
    progress : bool or None
        Show a progress bar; ``None`` shows it only when stderr is a terminal.
    options : mapping, optional
        Keyword arguments for every ``experiment.run`` call; each must be named in
        ``experiment.options``.

    Returns
    -------
    SweepResult

    Raises
    ------
    ValueError
        If ``size`` is not a known size, or an option is not one ``experiment`` accepts
        (checked before any work).
    """
    from tqdm.auto import tqdm

    options = dict(options or {})
    unknown = sorted(set(options) - set(experiment.options))
    if unknown:
        raise ValueError(f"{experiment.name} accepts the options "
                         f"{list(experiment.options) or 'none'}; got {unknown}")
    run = functools.partial(experiment.run, **options) if options else experiment.run
    start = time.perf_counter()
    sweep = experiment.sweep(size) if sweep is None else sweep
    exp_dir = Path(out) / experiment.name
    runs_dir = exp_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(runs_dir)
    for config in sweep.configs:
        path = exp_dir / "configs" / f"{config.config_hash()}.json"
        if not path.exists():
            record = {"experiment": experiment.name, "type": type(config).__name__,
                      "schema": config.SCHEMA, "config": config.to_dict()}
            atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")

    units = units_of(sweep, experiment.seeds_per_unit)
    paths = [runs_dir / f"{unit.key}.csv" for unit in units]
    todo = [i for i, path in enumerate(paths) if not path.exists()]
    n_skipped = len(units) - len(todo)

    if todo:
        own = executor is None
        executor = SequentialExecutor() if own else executor
        disable = None if progress is None else not progress
        bar = tqdm(total=len(todo), desc=experiment.name, unit="run", disable=disable, leave=False)
        with executor if own else contextlib.nullcontext(), bar:
            pending = [units[i] for i in todo]
            for j, frame in executor.imap_unordered(run, pending):
                unit = pending[j]
                atomic_write_table(_with_keys(frame, experiment.name, unit.config), paths[todo[j]])
                bar.update(1)

    table = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    tables = write_table(table, Path(out) / experiment.name)
    return SweepResult(experiment.name, len(units), len(todo), n_skipped,
                       sum(len(u.seeds) for u in units), tables, time.perf_counter() - start)


def write_table(table: pd.DataFrame, stem: Path) -> tuple[Path, ...]:
    """Write ``stem.csv`` and, when pyarrow is installed, ``stem.parquet``; return the paths."""
    csv_path = stem.with_suffix(".csv")
    atomic_write_table(table, csv_path)
    parquet_path = stem.with_suffix(".parquet")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        # A Parquet file from an earlier sweep would now be stale; figures prefer Parquet.
        parquet_path.unlink(missing_ok=True)
        return (csv_path,)
    atomic_write_table(table, parquet_path)
    return (csv_path, parquet_path)


def drop_provenance(table: pd.DataFrame) -> pd.DataFrame:
    """Return ``table`` without the provenance columns (for comparing runs)."""
    return table.drop(columns=[c for c in PROVENANCE_COLUMNS if c in table.columns])
