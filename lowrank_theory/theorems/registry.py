"""The registry of checks, and the runs: every check, every control, or the checks of one family.

:data:`CHECKS` holds one :class:`~lowrank_theory.theorems.record.Check` per claim (name, kind,
statement, references, the function that tests it, its instances, its runner on a given family
and its negative control), read from :mod:`lowrank_theory.theorems.records`.
:func:`run_checks` runs them, :func:`run_controls` their controls, :func:`run_on_family` those
that apply to a family a user brings (``lowrank-theory check --family FILE``).

Examples
--------
>>> [r.name for r in run_checks(seed=0, only=["sr-rank", "truth-global"])]
['sr-rank', 'truth-global']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from lowrank_theory._validation import as_seed_generator, check_int
from lowrank_theory.tasks import TaskFamily

from .instances import stream
from .record import Check, Registry
from .records import RECORDS
from .result import CheckResult, NotApplicable

__all__ = ["CHECKS", "Skipped", "run_checks", "run_controls", "run_on_family"]

#: name -> :class:`Check`, in the order of docs/theory.md; ``CHECKS.recovery_t3`` also works.
CHECKS: Registry = Registry(RECORDS)

Progress = Callable[[CheckResult, float], None]


@dataclass(frozen=True)
class Skipped:
    """A check that :func:`run_on_family` did not run, and why."""

    name: str
    kind: str
    reason: str


def _names(only: Sequence[str] | None) -> list[str]:
    names = list(CHECKS) if not only else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; valid names: {', '.join(CHECKS)}.")
    return names


def _named(record: Check, res: CheckResult) -> CheckResult:
    if res.kind != record.kind:
        raise RuntimeError(f"{record.name}: the check reported kind {res.kind!r}, the registry "
                           f"says {record.kind!r}; make the two agree.")
    return replace(res, name=record.name)


def _timed(record: Check, call: Callable[[], CheckResult], progress: Progress | None) -> CheckResult:
    start = time.perf_counter()
    res = _named(record, call())
    if progress is not None:
        progress(res, time.perf_counter() - start)
    return res


def run_checks(
    seed: int = 0, only: Sequence[str] | None = None, thorough: bool = False,
    progress: Progress | None = None,
) -> list[CheckResult]:
    """Run the checks on fresh instances drawn from ``seed``.

    Parameters
    ----------
    seed : int, default=0
        Base seed; each check draws from its own stream, so a subset reproduces the same
        instances as the full run.
    only : sequence of str, optional
        Names from :data:`CHECKS` (default: all).
    thorough : bool, default=False
        Five times as many families.
    progress : callable, optional
        Called with each result and its wall time as it finishes.

    Returns
    -------
    list of CheckResult

    Raises
    ------
    ValueError
        Unknown check name (the message lists the valid ones).
    """
    seed = check_int(seed, "seed", minimum=0)
    scale = 5 if thorough else 1
    results = []
    for name in _names(only):
        record = CHECKS[name]
        settings = record.settings.scaled(scale)
        results.append(_timed(record, lambda r=record, s=settings: r.draw(stream(seed, r.key), s),
                              progress))
    return results


def run_controls(
    seed: int = 0, only: Sequence[str] | None = None, progress: Progress | None = None,
) -> list[CheckResult]:
    """Run each check's negative control; every one of them should report failure.

    Returns
    -------
    list of CheckResult
        One per check, named after it; ``holds`` True means the control did *not* fail
        (the check could not tell the near miss from a good instance).
    """
    seed = check_int(seed, "seed", minimum=0)
    return [_timed(CHECKS[name], lambda r=CHECKS[name]: r.control(seed), progress)
            for name in _names(only)]


def run_on_family(
    family: TaskFamily, seed: int | np.random.Generator | None = 0,
    only: Sequence[str] | None = None, progress: Progress | None = None,
) -> tuple[list[CheckResult], list[Skipped]]:
    """Run every check that applies to ``family``; say why each other one was skipped.

    Parameters
    ----------
    family : TaskFamily
        The instance (e.g. :meth:`TaskFamily.load`).
    seed : int, Generator or None
        Source of the new tasks, samples and starts the checks draw on it.
    only : sequence of str, optional

    Returns
    -------
    results : list of CheckResult
    skipped : list of Skipped
        The checks that build their own instances or whose assumptions ``family`` violates,
        with the reason (a check that refuses the instance while running is reported here too).
    """
    if not isinstance(family, TaskFamily):
        raise TypeError(f"family must be a TaskFamily, got {type(family).__name__}.")
    rng = as_seed_generator(seed)
    results, skipped = [], []
    for name in _names(only):
        record = CHECKS[name]
        reason = record.skip_reason(family)
        if reason is None:
            try:
                results.append(_timed(record, lambda r=record: r.run_on(family, rng), progress))
                continue
            except NotApplicable as exc:
                reason = str(exc).removeprefix(f"{name}: ").rstrip(".")
        skipped.append(Skipped(name, record.kind, reason))
    return results, skipped
