"""Where units of work run: in this process, in local worker processes, or on dask.

A :class:`Unit` is one config with the seeds one call of an experiment's run function computes.
An executor's ``imap_unordered(run, units)`` yields ``(index, rows)`` as units finish; the
runner (:mod:`lowrank_theory.simulations.runner`) puts the rows back in sweep order. Workers run one BLAS
thread each, so a unit's rows do not depend on where it ran. Local workers end with the process
that started them, even when it is killed (:func:`_tie_to_parent`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from lowrank_theory.simulations.configs import ExperimentConfig

__all__ = [
    "EXECUTORS",
    "KEY_SEEDS_CHARS",
    "SCHEDULER_PROTOCOLS",
    "SCHEDULER_TIMEOUT",
    "SchedulerUnreachable",
    "Unit",
    "RunFunction",
    "SequentialExecutor",
    "LocalExecutor",
    "DaskExecutor",
    "check_scheduler_address",
    "make_executor",
    "probe_scheduler",
]

#: Executors ``--executor`` accepts.
EXECUTORS: tuple[str, ...] = ("local", "dask")
#: Longest seed list a unit's file name spells out (``<hash>-0_1_2``); a longer one is named by
#: its length and a digest, so that a name stays far below the 255 bytes a file name may have.
KEY_SEEDS_CHARS = 48
#: Protocols of dask.distributed scheduler addresses (``tcp://host:8786``).
SCHEDULER_PROTOCOLS: tuple[str, ...] = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
#: Seconds to wait for a dask scheduler to answer before giving up (dask's own default is 30).
SCHEDULER_TIMEOUT = 10.0


class SchedulerUnreachable(ConnectionError):
    """The dask scheduler at the address given does not answer in time."""

RunFunction = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class Unit:
    """One unit of work: a config and the seeds one ``run`` call computes."""

    config: ExperimentConfig
    seeds: tuple[int, ...]

    @property
    def key(self) -> str:
        """File stem, of bounded length whatever the seeds.

        ``<config_hash>-<seed>[_<seed>...]``, or for a long seed list
        ``<config_hash>-<count>seeds-<digest>``.

        Examples
        --------
        >>> from lowrank_theory.simulations.configs import PhaseConfig
        >>> Unit(PhaseConfig(), (0, 1, 2)).key == PhaseConfig().config_hash() + "-0_1_2"
        True
        >>> key = Unit(PhaseConfig(), tuple(range(100))).key
        >>> key.split("-")[1], len(key)
        ('100seeds', 38)
        """
        seeds = "_".join(map(str, self.seeds))
        if len(seeds) > KEY_SEEDS_CHARS:
            seeds = f"{len(self.seeds)}seeds-{hashlib.sha256(seeds.encode()).hexdigest()[:16]}"
        return f"{self.config.config_hash()}-{seeds}"


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
        name = getattr(getattr(run, "func", run), "__name__", run)  # through functools.partial
        raise TypeError(f"{name} must return a DataFrame with a 'seed' column; "
                        f"got {type(frame).__name__}")
    return frame


#: ``prctl`` option that delivers a signal to a process when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1
#: Seconds between two checks of the watchdog thread of a worker process.
_WATCHDOG_INTERVAL = 0.5


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_WATCHDOG_INTERVAL)
    os._exit(1)


def _tie_to_parent(parent: int) -> None:
    """Worker initializer: end this worker process when ``parent`` dies, even by SIGKILL.

    A worker amid a long unit would otherwise run on, orphaned, after its sweep was killed.
    Linux delivers SIGKILL on the parent's death (``PR_SET_PDEATHSIG``, tied to the thread that
    started the worker, which is the thread submitting work and outlives the pool); elsewhere a
    daemon thread notices that the parent pid changed. Both, since the signal is immediate and
    the thread portable.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watchdog",
                     daemon=True).start()


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
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_tie_to_parent, initargs=(os.getpid(),))
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


def check_scheduler_address(address: str) -> str:
    """Return the dask scheduler ``address`` with its protocol, after checking its form.

    ``host:port`` means ``tcp://host:port``. Nothing is imported or contacted.

    Raises
    ------
    ValueError
        If ``address`` is not ``[protocol://]host:port`` with a known protocol and a port in
        1..65535; the message shows the form expected.

    Examples
    --------
    >>> check_scheduler_address("10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    >>> check_scheduler_address("not an address")
    Traceback (most recent call last):
    ValueError: scheduler address 'not an address' is not of the form tcp://host:port (e.g. tcp://10.0.0.5:8786)
    """
    form = "tcp://host:port (e.g. tcp://10.0.0.5:8786)"
    if not isinstance(address, str) or not address or any(c.isspace() for c in address):
        raise ValueError(f"scheduler address {str(address)[:100]!r} is not of the form {form}")
    protocol, sep, rest = address.partition("://")
    if not sep:
        protocol, rest = "tcp", address
    if protocol not in SCHEDULER_PROTOCOLS:
        raise ValueError(f"scheduler address {address[:100]!r} has protocol {protocol[:20]!r}; "
                         f"use one of {', '.join(SCHEDULER_PROTOCOLS)}, as in {form}")
    if protocol == "inproc":
        if not rest:
            raise ValueError(f"scheduler address {address[:100]!r} names no process")
        return address
    try:
        parts = urllib.parse.urlsplit("//" + rest)
        port = parts.port
    except ValueError:
        port, parts = None, None
    if parts is None or not parts.hostname or port is None or not 0 < port < 65536 or (
            parts.path or parts.query or parts.fragment or parts.username):
        raise ValueError(f"scheduler address {address[:100]!r} is not of the form {form}")
    return f"{protocol}://{rest}"


class DaskExecutor:
    """Runs units on a dask.distributed cluster: ``scheduler`` address, or a new LocalCluster.

    Parameters
    ----------
    jobs : int
        Workers of the LocalCluster started when ``scheduler`` is None.
    scheduler : str or None
        Address of a running scheduler (``tcp://host:8786``), checked by
        :func:`check_scheduler_address`.
    processes : bool
        LocalCluster option: worker processes (default) or threads of this process.
    timeout : float, optional
        Seconds to wait for the scheduler to answer when entered; default
        :data:`SCHEDULER_TIMEOUT`.

    Raises
    ------
    ValueError
        If ``scheduler`` is not an address (on construction).
    SchedulerUnreachable
        If the scheduler does not answer within ``timeout`` seconds (on entering).
    """

    def __init__(self, jobs: int = 1, scheduler: str | None = None, *, processes: bool = True,
                 timeout: float | None = None) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive int, got {jobs!r}")
        if scheduler is not None:
            scheduler = check_scheduler_address(scheduler)
        self.jobs, self.scheduler, self.processes = jobs, scheduler, processes
        self.timeout = timeout
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
            timeout = SCHEDULER_TIMEOUT if self.timeout is None else self.timeout
            try:
                self._client = Client(self.scheduler, timeout=timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else (
                    type(exc).__name__)
                raise SchedulerUnreachable(
                    f"cannot reach the dask scheduler at {self.scheduler} within "
                    f"{timeout:g} s ({reason}); check the address, and that the scheduler "
                    "is running and reachable from here") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
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


def probe_scheduler(address: str, timeout: float | None = None) -> None:
    """Connect to the dask scheduler at ``address`` and disconnect, to see that it answers.

    Run before anything is written, so a wrong address fails at once rather than after the
    output folder was set up.

    Raises
    ------
    ValueError
        If ``address`` is not an address (:func:`check_scheduler_address`).
    SchedulerUnreachable
        If it does not answer within ``timeout`` seconds (default :data:`SCHEDULER_TIMEOUT`).
    ImportError
        If dask.distributed is not installed.
    """
    with DaskExecutor(1, address, timeout=timeout):
        pass

