"""Claims about LoRA-ML's global minima: the truth, its symmetry, Theorems 2 and 3, one task.

Each ``check_*`` function tests one claim on given inputs and returns a
:class:`~lowrank_theory.check_result.CheckResult`. The thing under test is an argument (the point,
the construction), so a negative control can hand it a near miss -- a base off by 1e-3, offsets
moved off collinearity, a slightly indefinite ``P`` -- and see it fail. Checks whose claim has
assumptions raise :class:`~lowrank_theory.check_result.NotApplicable` on instances that violate
them unless ``enforce_assumptions=False``. Every claim here holds for any SPD input
covariance: at zero excess loss ``A^ + U^_t U^_t^T = W*_t`` for every task whatever
``Sigma_t`` (docs/theory.md, sections 5, 6 and 8).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._validation import as_seed_generator, check_array, check_int
from lowrank_theory.lora_ml import lora_ml_gradient, lora_ml_objective
from lowrank_theory.losses import Source
from lowrank_theory.metrics import numerical_rank, offset_error
from lowrank_theory.tasks import TaskFamily

from .constructions import _check_family, offset_columns_independent, t1_minima
from .result import (
    CheckResult,
    NotApplicable,
    _check_source,
    _source_label,
    make_result,
    objective_tolerance,
    problem_scale,
    relative_gradient_norm,
)
from .retraining_checks import SR_GRAD_RTOL, _covariance_label

__all__ = [
    "check_truth_global",
    "check_rotation_invariance",
    "check_rank_2k",
    "check_recovery_t3",
    "check_recovery_general_covariance",
    "check_independence_needed",
    "check_t1_nonidentifiable",
]

# --------------------------------------------------------------------------- tolerances
#: Objective changes under ``U_t -> U_t Q_t``: pure round-off of a sum of squares.
INVARIANCE_RTOL = 1e-11
#: Singular values of ``A^ - A*`` at a global minimum found numerically count as zero below
#: ``RANK_ATOL_FACTOR * sqrt(objective) + RANK_RTOL * ||A^ - A*||``: the residual of a point
#: with objective F is of size sqrt(F), and 1e-8 covers the round-off of polished points.
RANK_ATOL_FACTOR = 100.0
RANK_RTOL = 1e-8
#: Relative recovery error of ``A*`` and of ``U*_t U*_t^T`` at a polished global minimum
#: (Newton-polished points are exact to ~1e-13; 1e-7 leaves room for ill-conditioning, such as
#: input covariances of condition number 100).
RECOVERY_RTOL = 1e-7
#: A counterexample to recovery must move the base by at least this much relative to the
#: problem's scale: nine orders above the round-off of an exact construction (~1e-15), so the
#: shift is real, however small the construction's parameters make it.
COUNTEREXAMPLE_MIN_RSHIFT = 1e-6
#: A point is stationary for these checks when ``||grad F||`` is below this fraction of the
#: gradient scale (the closed-form points here are exact to ~1e-15).
STATIONARY_RTOL = SR_GRAD_RTOL

# --------------------------------------------------------------------------- truth, symmetry (section 5)
def check_truth_global(
    family: TaskFamily, A: ArrayLike | None = None, U: ArrayLike | None = None
) -> CheckResult:
    """The ground truth ``(A*, U*)`` is a global minimum of the population objective.

    The population objective is the excess loss ``sum_t ||(A + U_t U_t^T - W*_t)
    Sigma_t^{1/2}||_F^2 >= 0``; the truth attains 0 and its gradient vanishes (docs/theory.md 5.1).

    Parameters
    ----------
    family : TaskFamily
    A, U : array_like, optional
        The point to certify (default: the truth).

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> res = check_truth_global(TaskFamily.random(d=4, k=1, T=3, seed=0))
    >>> res.name, res.holds
    ('truth-global', True)
    """
    family = _check_family(family)
    A = family.A_star if A is None else check_array(A, "A", (family.d, family.d))
    U = family.U_star if U is None else check_array(U, "U", (family.T, family.d, None))
    value = lora_ml_objective(family, A, U)
    grad_rel = relative_gradient_norm(family, lora_ml_gradient(family, A, U))
    tol = objective_tolerance(family)
    error = max(abs(value) / tol, grad_rel / STATIONARY_RTOL) * tol
    return make_result(
        "truth-global", "the ground truth is a global minimum with zero excess loss",
        "setup of Thm 2", 0.0, value, error, tol, kind="consistency",
        detail=f"{_covariance_label(family)}: F={value:.1e}, |grad F|/gradient scale={grad_rel:.1e}",
    )


def _random_orthogonal(r: int, rng: np.random.Generator) -> NDArray[np.float64]:
    Q, R = np.linalg.qr(rng.standard_normal((r, r)))
    return Q * np.sign(np.diag(R))


def check_rotation_invariance(
    source: Source, rank: int | None = None, seed: int | np.random.Generator | None = 0,
    *, Q: ArrayLike | None = None,
) -> CheckResult:
    """The objective is invariant under ``U_t -> U_t Q_t`` with ``Q_t`` orthogonal.

    Checked at a random point ``(A, U)`` (population or sample, docs/theory.md 5.2).

    Parameters
    ----------
    source : TaskFamily or TaskData
    rank : int, optional
        Adapter rank r (default ``min(2, d)``).
    seed : int, Generator or None
    Q : array_like of shape (T, r, r), optional
        The matrices applied (default: random orthogonal; a non-orthogonal one is a control).
    """
    _check_source(source)
    rng = as_seed_generator(seed)
    T, d = source.T, source.d
    r = min(2, d) if rank is None else check_int(rank, "rank", maximum=d)
    A = rng.standard_normal((d, d))
    U = rng.standard_normal((T, d, r))
    if Q is None:
        Q = np.stack([_random_orthogonal(r, rng) for _ in range(T)])
    Q = check_array(Q, "Q", (T, r, r))
    f0 = lora_ml_objective(source, A, U)
    f1 = lora_ml_objective(source, A, U @ Q)
    err = abs(f1 - f0) / max(1.0, abs(f0))
    return make_result(
        "rotation-invariance", "the objective is invariant under U_t -> U_t Q_t (Q_t orthogonal)",
        "setup of Thm 2", 0.0, err, err, INVARIANCE_RTOL, kind="consistency",
        detail=f"{_source_label(source)}: F={f0:.4g}, relative change of F={err:.1e}",
    )


# --------------------------------------------------------------------------- Theorem 2 (section 5)
def check_rank_2k(
    family: TaskFamily, A_hat: ArrayLike, U_hat: ArrayLike, *, enforce_assumptions: bool = True
) -> CheckResult:
    """At any global minimum, ``rank(A^ - A*) <= 2k`` (Theorem 2, docs/theory.md 5.3).

    At zero excess loss ``A^ + U^_t U^_t^T = W*_t`` for every task (``Sigma_t`` is
    non-singular), so ``A^ - A* = U*_t U*_t^T - U^_t U^_t^T`` has rank at most ``2k`` when the
    adapters have the truth's rank k (with rank-r adapters the bound is ``k + r``, which a
    minimum with ``r > k`` can exceed 2k by: the negative control).

    Parameters
    ----------
    family : TaskFamily
    A_hat : array_like of shape (d, d)
    U_hat : array_like of shape (T, d, r)
        A global minimum (objective within the global-value tolerance), ``r = k``.
    enforce_assumptions : bool, default=True
        Refuse ``r != k``.

    Raises
    ------
    ValueError
        If the point is not a global minimum (the claim says nothing about it), or ``r != k``.
    """
    family = _check_family(family)
    A_hat = check_array(A_hat, "A_hat", (family.d, family.d))
    U_hat = check_array(U_hat, "U_hat", (family.T, family.d, None))
    value = lora_ml_objective(family, A_hat, U_hat)
    if value > objective_tolerance(family):
        raise ValueError(f"(A_hat, U_hat) is not a global minimum (objective {value:.3g} > 0).")
    r = U_hat.shape[2]
    if enforce_assumptions and r != family.k:
        raise NotApplicable(f"the 2k bound is for adapters of the truth's rank k={family.k}, got r={r}.")
    diff = A_hat - family.A_star
    s = scipy.linalg.svdvals(diff)
    thr = RANK_ATOL_FACTOR * math.sqrt(max(value, 0.0)) + RANK_RTOL * max(1.0, float(s[0]))
    measured = int(np.sum(s > thr))
    bound = min(2 * family.k, family.d)
    first_out = s[bound] if bound < family.d else 0.0
    return make_result(
        "rank-2k", "any global minimum has rank(A^ - A*) <= 2k", "Thm 2", bound, measured,
        first_out, thr, kind="consistency", holds=measured <= bound,
        detail=f"T={family.T}, k={family.k}, r={r}: |A^-A*|_F={float(np.linalg.norm(diff)):.3g}, "
        f"s_(2k+1)(A^-A*)={first_out:.1e}",
    )


# --------------------------------------------------------------------------- Theorem 3 (section 6)
def _recovery(
    name: str, claim: str, reference: str, family: TaskFamily, A_hat: ArrayLike,
    U_hat: ArrayLike, enforce_assumptions: bool,
) -> CheckResult:
    family = _check_family(family)
    if enforce_assumptions and (family.T < 3 or not offset_columns_independent(family)):
        raise NotApplicable(
            "exact recovery needs T >= 3 and linearly independent offset columns "
            f"(got T={family.T}, k={family.k}, d={family.d})."
        )
    A_hat = check_array(A_hat, "A_hat", (family.d, family.d))
    U_hat = check_array(U_hat, "U_hat", (family.T, family.d, None))
    value = lora_ml_objective(family, A_hat, U_hat)
    if value > objective_tolerance(family):
        raise ValueError(f"(A_hat, U_hat) is not a global minimum (objective {value:.3g}).")
    scale = problem_scale(family)
    base_err = float(np.linalg.norm(A_hat - family.A_star)) / scale
    off_err = float(np.max(offset_error(U_hat, family.U_star))) / scale
    error = max(base_err, off_err)
    return make_result(
        name, claim, reference, 0.0, error, error, RECOVERY_RTOL,
        detail=f"T={family.T}, k={family.k}, d={family.d}, {_covariance_label(family)}: "
        f"|A^-A*|_F/scale={base_err:.1e}, max_t |U^_t U^_t^T - U*_t U*_t^T|_F/scale={off_err:.1e}",
    )


def check_recovery_t3(
    family: TaskFamily, A_hat: ArrayLike, U_hat: ArrayLike, *, enforce_assumptions: bool = True
) -> CheckResult:
    """T >= 3, independent offset columns: a global minimum recovers ``A*`` and each ``U*_t U*_t^T``.

    Theorem 3 (docs/theory.md 6.1). Without the assumptions the conclusion can fail (the
    ``d = 2`` counterexample of :func:`~lowrank_theory.theorems.independence_counterexample`).

    Parameters
    ----------
    family : TaskFamily
        ``T >= 3``, the ``kT`` columns of ``[U*_1 ... U*_T]`` linearly independent.
    A_hat, U_hat : array_like
        A global minimum.
    enforce_assumptions : bool, default=True
        Refuse families outside the theorem's assumptions.

    Raises
    ------
    ValueError
        If the family violates the conditions (when enforced) or the point is not a global
        minimum.
    """
    return _recovery("recovery-t3", "T >= 3, independent offsets: global minima recover A* and "
                     "U*_t U*_t^T", "Thm 3", family, A_hat, U_hat, enforce_assumptions)


def check_recovery_general_covariance(
    family: TaskFamily, A_hat: ArrayLike, U_hat: ArrayLike, *, enforce_assumptions: bool = True
) -> CheckResult:
    """Theorem 3 under general input covariances: global minima recover ``A*`` and the offsets.

    At zero excess loss ``sum_t ||(A^ + U^_t U^_t^T - W*_t) Sigma_t^{1/2}||_F^2 = 0`` with every
    ``Sigma_t`` positive definite, so ``A^ + U^_t U^_t^T = W*_t`` for every task: the set of
    global minima does not depend on the covariances, and Theorem 3's conclusion carries over
    (docs/theory.md, section 6.1). What the covariance changes is the landscape the solvers
    cross (conditioning up to 100 here), so the check runs them on such families.

    Parameters
    ----------
    family : TaskFamily
        ``T >= 3``, independent offset columns, any SPD covariance(s).
    A_hat, U_hat : array_like
        A global minimum.
    enforce_assumptions : bool, default=True
    """
    return _recovery("recovery-general-covariance", "T >= 3, independent offsets, any SPD "
                     "covariance: global minima recover A* and U*_t U*_t^T", "Thm 3 (any Sigma)",
                     family, A_hat, U_hat, enforce_assumptions)


def check_independence_needed(
    family: TaskFamily, A_hat: ArrayLike, U_hat: ArrayLike
) -> CheckResult:
    """Informational: a zero-loss minimum with ``A^ != A*`` when the independence condition fails.

    ``holds`` is True when the demonstration works: the point has (numerically) zero loss, the
    offsets violate column independence, and ``A^`` is far from ``A*`` (docs/theory.md 6.2).
    """
    family = _check_family(family)
    A_hat = check_array(A_hat, "A_hat", (family.d, family.d))
    U_hat = check_array(U_hat, "U_hat", (family.T, family.d, None))
    value = lora_ml_objective(family, A_hat, U_hat)
    shift = float(np.linalg.norm(A_hat - family.A_star)) / problem_scale(family)
    tol = objective_tolerance(family)
    dependent = not offset_columns_independent(family)
    works = value <= tol and shift >= COUNTEREXAMPLE_MIN_RSHIFT and dependent
    return make_result(
        "independence-needed",
        "without independent offset columns, zero-loss minima with A^ != A* exist",
        "condition of Thm 3", 0.0, shift, value, tol, kind="info", holds=works,
        detail=f"T={family.T}, d={family.d}, k={family.k}: F={value:.1e}, "
        f"|A^-A*|_F/scale={shift:.3f}, columns dependent={dependent}",
    )


# --------------------------------------------------------------------------- T = 1 (section 8)
def check_t1_nonidentifiable(
    family: TaskFamily, n_constructions: int = 5, seed: int | np.random.Generator | None = 0,
    *, points: Sequence[tuple[ArrayLike, ArrayLike]] | None = None,
) -> CheckResult:
    """T = 1: ``A`` is not identified -- any ``A = W*_1 - P`` with ``P`` PSD of rank <= k is optimal.

    Checks that each point has zero loss, that ``rank(A - A*) <= 2k``, and that the bases are
    distinct (``measured``: the smallest pairwise distance relative to the scale, predicted
    positive). The points default to ``n_constructions`` random ones (docs/theory.md 8); a
    point ``W*_1 - P`` with ``P`` indefinite by 1e-3 in one direction (a control) has positive
    loss.
    """
    family = _check_family(family)
    if family.T != 1:
        raise NotApplicable(f"non-identifiability is the T = 1 claim, got T={family.T}.")
    if points is None:
        points = t1_minima(family, n_constructions, seed)
    k = family.k
    tol = objective_tolerance(family)
    bases, worst_value, worst_rank = [], 0.0, 0
    for A, V in points:
        A = check_array(A, "A", (family.d, family.d))
        worst_value = max(worst_value, lora_ml_objective(family, A, V))
        diff = A - family.A_star
        worst_rank = max(worst_rank, numerical_rank(diff, rtol=1e-9) if np.any(diff) else 0)
        bases.append(A)
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(bases) for b in bases[i + 1:]]
    spread = float(min(gaps)) / problem_scale(family) if gaps else 0.0
    ok = worst_value <= tol and worst_rank <= 2 * k and spread > COUNTEREXAMPLE_MIN_RSHIFT
    return make_result(
        "t1-nonidentifiable", "T = 1: every A = W*_1 - P (P PSD, rank <= k) is a global minimum",
        "setup", 0.0, worst_value, worst_value, tol, kind="consistency", holds=ok,
        detail=f"{len(bases)} minima, min over pairs |A_i - A_j|_F/scale={spread:.3f}, "
        f"max rank(A - A*)={worst_rank}",
    )
