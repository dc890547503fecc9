"""How big a sweep is before it runs: its number of runs, and the memory of its largest units.

A sweep file or a seed option can ask for more than a machine holds: a grid of 10^9 points, a
billion seeds, a dimension whose matrices alone take hundreds of GiB. Both sizes are known from
the sweep's description, without building it: the number of runs is the product of the grid's
axis lengths and the number of seeds (:func:`check_run_count`), and a unit's memory follows from
its config's fields (:func:`unit_bytes`). Both are checked before anything is written or
computed, and past a limit the sweep is refused with the numbers; ``--force`` lifts the limits
(except :data:`HARD_MAX_RUNS`, past which the list of units itself would not fit).

The memory estimates are the peak bytes a unit allocates, measured with ``tracemalloc`` at
small sizes (d = 40 to 320, N up to 4000) and fitted per experiment, rounded up. They are meant
to tell 1 GiB from 200 GiB, not 1.0 from 1.2 GiB.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from lowrank_theory.simulations.configs import (
    ExperimentConfig,
    LandscapeConfig,
    PhaseConfig,
    RateConfig,
    VaryConfig,
)
from lowrank_theory.simulations.schemes import SchemesConfig

__all__ = [
    "HARD_MAX_RUNS",
    "MAX_RUNS",
    "SweepTooLarge",
    "check_memory",
    "check_run_count",
    "format_bytes",
    "memory_limit",
    "unit_bytes",
]

#: Runs (config, seed pairs) a sweep may have without ``--force``: 500 times the largest
#: built-in sweep (``phase --full``, 200 runs).
MAX_RUNS = 100_000
#: Runs no sweep may have, ``--force`` or not: each unit is a Python object and two files, so
#: past this the sweep's own bookkeeping takes gigabytes and the folder millions of files.
HARD_MAX_RUNS = 10_000_000
#: Bytes of a float64.
_F8 = 8


class SweepTooLarge(ValueError):
    """A sweep with more runs, or units needing more memory, than the limits allow."""


def check_run_count(n_configs: int, n_seeds: int, *, force: bool = False,
                    what: str = "the sweep") -> int:
    """Return the number of runs ``n_configs * n_seeds`` after checking it against the limits.

    Parameters
    ----------
    n_configs, n_seeds : int
        Counted, not listed: the product of the grid's axis lengths, and the seed count.
    force : bool
        Lift :data:`MAX_RUNS` (:data:`HARD_MAX_RUNS` still holds).
    what : str
        What to call the sweep in the message.

    Raises
    ------
    SweepTooLarge
        Past the limit; the message gives the counts and the way out.

    Examples
    --------
    >>> check_run_count(24, 3)
    72
    >>> check_run_count(10**9, 3)
    Traceback (most recent call last):
    lowrank_theory.simulations.budget.SweepTooLarge: the sweep has 1,000,000,000 configs x 3 seeds = 3,000,000,000 runs, more than the 100,000 allowed without --force (and the 10,000,000 allowed at all); make the grid or the seeds smaller
    """
    runs = n_configs * n_seeds
    if runs > HARD_MAX_RUNS or (runs > MAX_RUNS and not force):
        counts = f"{n_configs:,} configs x {n_seeds:,} seeds = {runs:,} runs"
        if runs > HARD_MAX_RUNS:
            raise SweepTooLarge(f"{what} has {counts}, more than the {MAX_RUNS:,} allowed without "
                                f"--force (and the {HARD_MAX_RUNS:,} allowed at all); make the "
                                "grid or the seeds smaller")
        raise SweepTooLarge(f"{what} has {counts}, more than the {MAX_RUNS:,} allowed without "
                            "--force; make the grid or the seeds smaller, or pass --force to "
                            "run it anyway")
    return runs


def _vary(c: VaryConfig, seeds: int) -> int:
    # Retraining data (T, N, d) and the new task's (n, d) per seed (seeds are an array axis),
    # and a few d x d bases: about 4 copies of the data at the peak.
    return _F8 * seeds * (4 * c.T * c.N * c.d + 4 * c.n * c.d + 8 * c.d**2)


def _phase(c: PhaseConfig, seeds: int) -> int:
    # Population LoRA-ML: a few d x d matrices (A, A*, gradients); measured 3 d^2 float64.
    return _F8 * (5 * c.d**2 + 4 * c.T * c.d * c.k)


def _rate(c: RateConfig, seeds: int) -> int:
    # Samples (T, N, d) and their copies in the solvers: measured 4 T N d float64.
    return _F8 * (6 * c.T * c.N * c.d + 6 * max(c.n_grid) * c.d + 8 * c.d**2)


def _landscape(c: LandscapeConfig, seeds: int) -> int:
    # L-BFGS keeps its history of d^2-sized vectors: measured 103 d^2 float64 (exact: 34).
    return _F8 * (160 * c.d**2 + 4 * c.T * c.d * c.k)


def _schemes(c: SchemesConfig, seeds: int) -> int:
    return _F8 * (6 * c.T * c.N * c.d + 4 * max(c.n_grid) * c.d + 128 * c.d**2)


#: The estimate of each config type: peak bytes of one unit from its config and seed count.
_ESTIMATES: dict[type, Callable[[ExperimentConfig, int], int]] = {
    VaryConfig: _vary, PhaseConfig: _phase, RateConfig: _rate, LandscapeConfig: _landscape,
    SchemesConfig: _schemes,
}


def unit_bytes(config: ExperimentConfig, n_seeds: int = 1) -> int | None:
    """Estimated peak memory, in bytes, of one unit of ``config`` with ``n_seeds`` seeds.

    Returns None for a config type without an estimate (the neural experiments, whose memory
    depends on the device).

    Examples
    --------
    >>> format_bytes(unit_bytes(PhaseConfig(d=100_000)))
    '373 GiB'
    """
    estimate = _ESTIMATES.get(type(config))
    return None if estimate is None else int(estimate(config, n_seeds))


def memory_limit() -> int | None:
    """Return the machine's physical memory in bytes, or None where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def format_bytes(n: int) -> str:
    """``n`` bytes in the largest binary unit that keeps it at least 1.

    Examples
    --------
    >>> format_bytes(3 * 2**30), format_bytes(1536)
    ('3.0 GiB', '1.5 KiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if n >= 100 or unit == "B" else f"{n:.1f} {unit}"


def check_memory(configs: Sequence[ExperimentConfig], seeds_per_unit: int, jobs: int = 1, *,
                 force: bool = False, limit: int | None = None) -> int | None:
    """Return the estimated peak memory of the sweep's concurrent units, after checking it.

    Parameters
    ----------
    configs : sequence of ExperimentConfig
        The sweep's configs.
    seeds_per_unit : int
        Seeds one unit runs at once (for experiments that batch seeds as an array axis).
    jobs : int
        Units that run at the same time (the ``jobs`` largest are added up).
    force : bool
        Skip the check (the estimate is still returned).
    limit : int, optional
        Bytes allowed; default :func:`memory_limit`.

    Returns
    -------
    int or None
        The estimate, or None when no config has one.

    Raises
    ------
    SweepTooLarge
        If the estimate exceeds ``limit``; the message names the largest unit's config and
        both numbers.

    Examples
    --------
    >>> check_memory([PhaseConfig(d=10)], 1, limit=2**30) < 2**20
    True
    >>> check_memory([PhaseConfig(d=10), PhaseConfig(d=100_000)], 1, limit=2**30)
    Traceback (most recent call last):
    lowrank_theory.simulations.budget.SweepTooLarge: one unit of PhaseConfig(d=100000, T=3, k=1, solver='exact', restarts=3) needs about 373 GiB of memory (estimated from its fields), more than the 1.0 GiB this machine has; make its sizes smaller, or pass --force to run it anyway
    """
    sizes = [(size, config) for config in configs
             if (size := unit_bytes(config, seeds_per_unit)) is not None]
    if not sizes:
        return None
    sizes.sort(key=lambda pair: pair[0], reverse=True)
    total = sum(size for size, _ in sizes[:max(1, jobs)])
    limit = memory_limit() if limit is None else limit
    if force or limit is None or total <= limit:
        return total
    biggest, config = sizes[0]
    concurrent = (f", and {min(jobs, len(sizes))} units at once (--jobs {jobs}) about "
                  f"{format_bytes(total)}" if jobs > 1 and total > biggest else "")
    raise SweepTooLarge(f"one unit of {config!r} needs about {format_bytes(biggest)} of memory "
                        f"(estimated from its fields){concurrent}, more than the "
                        f"{format_bytes(limit)} this machine has; make its sizes smaller"
                        f"{', or use fewer --jobs' if concurrent else ''}, or pass --force to "
                        "run it anyway")

