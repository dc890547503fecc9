"""The shared scales of the checks, and the check record re-exported from the core.

:class:`~lowrank_theory.check_result.CheckResult`, its kinds and margins live in
:mod:`lowrank_theory.check_result` (light, so that the schemes can return one without importing
this package); this module adds what the theorem checks share: the problem's scale, the
objective below which a point counts as a global minimum, and the relative gradient norm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lowrank_theory import stationary
from lowrank_theory.check_result import (
    KINDS,
    MARGIN_CAP,
    CheckResult,
    NotApplicable,
    aggregate,
    make_result,
    margin,
)
from lowrank_theory.losses import Source, statistics
from lowrank_theory.tasks import TaskData, TaskFamily

__all__ = [
    "CheckResult",
    "NotApplicable",
    "KINDS",
    "MARGIN_CAP",
    "margin",
    "make_result",
    "aggregate",
    "problem_scale",
    "objective_tolerance",
    "relative_gradient_norm",
]


def problem_scale(family: TaskFamily) -> float:
    """``scale = max(1, ||A*||_F + sum_t ||U*_t U*_t^T||_F)``, the unit of relative errors of ``A``."""
    offsets = np.linalg.norm(family.offsets, axis=(1, 2)).sum()
    return max(1.0, float(np.linalg.norm(family.A_star) + offsets))


def objective_tolerance(source: Source) -> float:
    """Objective below which a point counts as a global minimum of the population objective."""
    _, value_scale = stationary.problem_scales(statistics(source))
    return stationary.VALUE_RTOL * value_scale


def relative_gradient_norm(source: Source, gradient: Sequence[np.ndarray]) -> float:
    """``||grad F|| / gradient_scale`` (:func:`lowrank_theory.stationary.problem_scales`)."""
    grad_scale, _ = stationary.problem_scales(statistics(source))
    return float(np.sqrt(sum(np.sum(g**2) for g in gradient))) / grad_scale


def _check_source(source: Source) -> Source:
    if not isinstance(source, (TaskFamily, TaskData)):
        raise TypeError(f"source must be a TaskFamily or TaskData, got {type(source).__name__}.")
    return source


def _source_label(source: Source) -> str:
    return "population" if isinstance(source, TaskFamily) else f"sample N={source.n}"
