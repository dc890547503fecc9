"""Theory hooks across schemes: the SR floor, rank k from LoRA-ML, and SR's catch-up budget.

Each ``check_*`` function returns a :class:`lowrank_theory.check_result.CheckResult`: the claim,
the predicted and measured values, and whether the claim holds on the instance given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lowrank_theory.adaptation import excess_loss
from lowrank_theory.check_result import CheckResult, make_result
from lowrank_theory.covariance import whiten
from lowrank_theory.lora_ml import fit_lora_ml
from lowrank_theory.metrics import eckart_young_tail
from lowrank_theory.retraining import standard_retraining
from lowrank_theory.schemes.interface import AdaptationScheme, lora_params
from lowrank_theory.schemes.lora import AdaptiveRankLoRA, FixedRankLoRA, MixtureOfAdapters
from lowrank_theory.schemes.preserving import SubspaceInit, WeightInterpolation
from lowrank_theory.tasks import TaskFamily

__all__ = [
    "rank_floor",
    "crossing_budget",
    "check_sr_floor_across_schemes",
    "check_rank_k_suffices",
    "check_sr_crossing",
]

#: A loss may sit below the Eckart-Young floor of its update's rank by this relative amount:
#: both are singular-value computations on the same d x d matrices.
FLOOR_RTOL = 1e-9
#: From the population LoRA-ML base (``A^ = A*`` to ~1e-15 for T >= 3) a rank-k scheme's
#: loss must be below this fraction of SR's rank-k floor.
SUFFICES_RTOL = 1e-9
#: A loss counts as reaching a target when within this fraction of ``||W* - A_SR||^2`` above it
#: (population losses that should be zero sit at round-off, ~1e-28 of the scale).
REACH_RTOL = 1e-10


def _result(name: str, claim: str, predicted: float, measured: float, error: float,
            tolerance: float, holds: bool, detail: str) -> CheckResult:
    return make_result(name, claim, "Thm 1 (v2) and corollary, across schemes", predicted,
                       measured, error, tolerance, kind="theorem", detail=detail, holds=holds)


def _population_family(family: TaskFamily, new_task: TaskFamily) -> None:
    for name, value in (("family", family), ("new_task", new_task)):
        if not isinstance(value, TaskFamily):
            raise TypeError(f"{name} must be a TaskFamily (population), got {type(value).__name__}.")
    if new_task.T != 1 or new_task.d != family.d:
        raise ValueError("new_task must be one task of the family's dimension (fam.new_task()).")


def rank_floor(A: ArrayLike, task: TaskFamily, rank: int) -> float:
    """Eckart-Young floor: ``min_{rank(Delta) <= rank} ||(W* - A - Delta) Sigma^{1/2}||_F^2``.

    Returns
    -------
    float
        ``sum_{i > rank} s_i(M)^2`` with ``M = (W* - A) Sigma^{1/2}`` (the ``rank(Delta Sigma^{1/2})
        = rank(Delta)`` update absorbs the top singular directions).

    Examples
    --------
    >>> from lowrank_theory import TaskFamily, standard_retraining
    >>> fam = TaskFamily.random(d=8, k=1, T=3, seed=0)
    >>> new = fam.new_task(seed=1)
    >>> A_sr = standard_retraining(fam)
    >>> rank_floor(A_sr, new, 3) > 0 and rank_floor(A_sr, new, 4) < 1e-20
    True
    """
    residual = task.W_star[0] - np.asarray(A, dtype=np.float64)
    S = None if task.isotropic else task.task_covariances()[0]
    return eckart_young_tail(whiten(residual, S), rank)


def crossing_budget(budgets: Sequence[int], losses: Sequence[float], target: float,
                    atol: float = 0.0) -> int | None:
    """The smallest budget whose loss is at most ``target + atol`` (None if none is).

    Examples
    --------
    >>> crossing_budget([20, 40, 60], [5.0, 1.0, 0.1], target=0.5)
    60
    """
    below = [b for b, loss in zip(budgets, losses) if loss <= target + atol]
    return min(below) if below else None


def _default_schemes(adapters: NDArray | None = None) -> tuple[AdaptationScheme, ...]:
    return (FixedRankLoRA(), AdaptiveRankLoRA(), WeightInterpolation("lora"),
            MixtureOfAdapters(adapters), SubspaceInit(beta=0.0, steps=0))


def check_sr_floor_across_schemes(
    family: TaskFamily, new_task: TaskFamily,
    schemes: Sequence[AdaptationScheme] | None = None,
) -> CheckResult:
    """From ``A_SR`` no scheme with fewer than ``k(T+1)`` rank-equivalent parameters reaches the task.

    Each scheme runs on the population from ``A_SR`` at every budget ``2 d r``,
    ``r = 1 .. k(T+1) - 1``. The claim holds when every update has rank below ``k(T+1)`` and
    a loss at or above the Eckart-Young floor of its rank (:func:`rank_floor`), which is
    positive. It binds updates whose rank is paid for at ``2d`` parameters per rank; a dense
    ``d x d`` update (``d^2`` parameters) escapes it when ``d < 2 k (T + 1)``.

    Returns
    -------
    CheckResult
        ``predicted``: the floor at rank ``k(T+1) - 1``; ``measured``: the smallest loss.
    """
    _population_family(family, new_task)
    schemes = _default_schemes() if schemes is None else tuple(schemes)
    d, kt1 = family.d, family.k * (family.T + 1)
    A = standard_retraining(family)
    deficit, losses, notes, ok = 0.0, [], [], True
    for scheme in schemes:
        for r in range(1, min(kt1, d + 1)):
            budget = lora_params(d, r)
            if budget < scheme.min_budget(d):
                continue
            res = scheme.adapt(A, new_task, budget, preserve=family)
            floor = rank_floor(A, new_task, res.update_rank)
            deficit = max(deficit, (floor - res.loss) / max(floor, 1e-300))
            ok &= res.update_rank < kt1 and floor > 0 and res.loss >= floor * (1 - FLOOR_RTOL)
            losses.append(res.loss)
            notes.append(f"{res.scheme}@r={r}: rank {res.update_rank}, loss/floor(r) "
                         f"{res.loss / max(rank_floor(A, new_task, r), 1e-300):.3g}")
    if not losses:
        raise ValueError("no scheme accepted a budget below 2 d k (T + 1); nothing was checked.")
    return _result(
        "schemes-sr-floor",
        "from A_SR, no scheme with fewer than k(T+1) rank-equivalent parameters reaches the task",
        rank_floor(A, new_task, kt1 - 1), min(losses), deficit, FLOOR_RTOL, ok,
        f"d={d}, k={family.k}, T={family.T}; floor at rank k(T+1): "
        f"{rank_floor(A, new_task, kt1):.3g}; " + "; ".join(notes),
    )


def check_rank_k_suffices(
    family: TaskFamily, new_task: TaskFamily,
    schemes: Sequence[AdaptationScheme] | None = None,
) -> CheckResult:
    """From the population LoRA-ML base, every scheme at its rank-k budget reaches the task.

    The base and the per-task adapters (for the mixture) come from
    ``fit_lora_ml(family, k)``; each scheme gets ``scheme.rank_budget(k, d)`` parameters.
    Holds when the worst loss is below ``SUFFICES_RTOL`` times SR's rank-k floor (it fails
    for T = 2, where LoRA-ML need not recover ``A*``).

    Returns
    -------
    CheckResult
        ``predicted``: 0; ``measured``: the worst loss relative to SR's rank-k floor.
    """
    _population_family(family, new_task)
    fit = fit_lora_ml(family, family.k)
    schemes = _default_schemes(fit.deltas) if schemes is None else tuple(schemes)
    d, k = family.d, family.k
    sr_floor = rank_floor(standard_retraining(family), new_task, k)
    ratios = {}
    for scheme in schemes:
        res = scheme.adapt(fit.A, new_task, scheme.rank_budget(k, d), preserve=family)
        ratios[res.scheme] = res.loss / sr_floor
    worst = max(ratios.values())
    return _result(
        "schemes-rank-k", "from the LoRA-ML base, rank k suffices for every scheme",
        0.0, worst, worst, SUFFICES_RTOL, worst <= SUFFICES_RTOL,
        f"SR rank-k floor {sr_floor:.3g}; loss/floor: "
        + ", ".join(f"{name} {v:.2g}" for name, v in ratios.items()),
    )


def check_sr_crossing(
    family: TaskFamily, new_task: TaskFamily, scheme: AdaptationScheme | None = None,
) -> CheckResult:
    """From ``A_SR`` a scheme first matches the LoRA-ML base's rank-k loss at rank ``k(T+1)``.

    Population, with the family as the preserve set: the target is the scheme's own loss from
    the LoRA-ML base at ``rank_budget(k)``; the crossing is the smallest ``rank_budget(r)``, ``r = 1 .. min(d,
    k(T+1) + 1)``, whose loss from ``A_SR`` is within ``REACH_RTOL ||W* - A_SR||^2`` of it.

    Returns
    -------
    CheckResult
        ``predicted``: ``rank_budget(k(T+1))``; ``measured``: the crossing budget (NaN if none).
    """
    _population_family(family, new_task)
    scheme = FixedRankLoRA() if scheme is None else scheme
    d, k, kt1 = family.d, family.k, family.k * (family.T + 1)
    A_sr = standard_retraining(family)
    A_ml = fit_lora_ml(family, k).A
    target = scheme.adapt(A_ml, new_task, scheme.rank_budget(k, d), preserve=family).loss
    budgets = [scheme.rank_budget(r, d) for r in range(1, min(d, kt1 + 1) + 1)]
    losses = [scheme.adapt(A_sr, new_task, b, preserve=family).loss for b in budgets]
    cross = crossing_budget(budgets, losses, target, REACH_RTOL * excess_loss(new_task, A_sr))
    predicted = scheme.rank_budget(kt1, d)
    measured = math.nan if cross is None else cross
    error = 1.0 if cross is None else abs(cross - predicted) / predicted
    return _result(
        "schemes-sr-crossing",
        f"from A_SR, {scheme.label} matches the LoRA-ML rank-k loss first at rank k(T+1)",
        predicted, measured, error, 0.0, cross == predicted,
        f"target {target:.3g}; SR losses by budget: "
        + ", ".join(f"{b}: {loss:.3g}" for b, loss in zip(budgets, losses)),
    )
