"""Claims about LoRA-ML's global minima and landscape (Theorems 2-4, T = 1, spurious minima).

Each ``check_*`` function tests one claim on one given instance and returns a
:class:`~lowrank_theory.theorems.result.CheckResult`. The thing under test is an argument with
the library's answer as its default (the truth, SR's base, the exact Hessian-vector product...),
so a negative control can hand it a perturbed answer, a stub that returns the truth, or an
instance that violates the claim's assumptions, and see it fail
(:mod:`lowrank_theory.theorems.instances` pairs every check with such a control). Checks whose
claim has assumptions refuse instances that violate them unless ``enforce_assumptions=False``,
which the controls use to show the conclusion then fails. Section numbers refer to
docs/theory.md (sections 5 to 9).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from lowrank_theory import landscape, stationary
from lowrank_theory._validation import as_seed_generator, check_array, check_int
from lowrank_theory.adaptation import fine_tune
from lowrank_theory.lora_ml import lora_ml_gradient, lora_ml_objective
from lowrank_theory.losses import Source
from lowrank_theory.metrics import numerical_rank, offset_error
from lowrank_theory.retraining import standard_retraining
from lowrank_theory.tasks import TaskFamily

from .constructions import (
    _check_family,
    global_minima_from_random_starts,
    hyperbolic_minimum,
    offset_columns_independent,
    t1_minima,
)
from .result import (
    MARGIN_CAP,
    CheckResult,
    _check_source,
    _source_label,
    make_result,
    margin,
    objective_tolerance,
    problem_scale,
    relative_gradient_norm,
)
from .retraining_checks import FLOOR_ZERO_RTOL, SR_GRAD_RTOL, _base

__all__ = [
    "check_truth_global_minimum",
    "check_rotation_invariance",
    "check_zero_saddle",
    "check_zero_global_t1",
    "check_zero_is_stationary",
    "check_rank_bound",
    "check_exact_recovery",
    "check_independence_needed",
    "check_hyperbolic_family",
    "check_strict_saddle",
    "check_gradient_finds_global",
    "check_rank_3k_fine_tuning",
    "check_t1_nonidentifiable",
    "check_spurious_minimum",
    "check_exact_hessian",
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
#: (Newton-polished points are exact to ~1e-13; 1e-7 leaves room for ill-conditioning).
RECOVERY_RTOL = 1e-7
#: A counterexample to recovery must move the base by at least this much relative to the
#: problem's scale: nine orders above the round-off of an exact construction (~1e-15), so the
#: shift is real, however small the construction's parameters make it.
COUNTEREXAMPLE_MIN_RSHIFT = 1e-6
#: A point is stationary for these checks when ``||grad F||`` is below this fraction of the
#: gradient scale (the closed-form points here are exact to ~1e-15).
STATIONARY_RTOL = SR_GRAD_RTOL
#: Least negative curvature, relative to ||H||, for a saddle to count as strict; see
#: :data:`lowrank_theory.landscape.CURVATURE_RTOL`.
CURVATURE_RTOL = landscape.CURVATURE_RTOL
#: Agreement of the measured smallest Hessian eigenvalue at ``(A_SR, 0)`` with its closed form
#: ``-4 max_t lambda_max(M_t - mean M)``, relative to ``||H||`` (dense eigh: ~1e-15).
SADDLE_VALUE_RTOL = 1e-9
#: Non-global stationary points a strict-saddle check must examine on each instance, so that
#: it cannot pass by finding none (``(A_SR, 0)`` and the ``U_s = 0`` faces give ``T + 1``).
MIN_NONGLOBAL_STATIONARY = 2
#: Taylor-remainder slopes (symmetrised, see
#: :func:`lowrank_theory.landscape.taylor_remainder_slopes`): the gradient remainder must scale
#: at least as h^(3 - tol), the Hessian remainder as h^(4 - tol); both are single powers when
#: the derivatives are right. A wrong gradient gives slope 1, a wrong Hessian slope 2.
TAYLOR_SLOPE_TOL = 0.1
#: Lanczos and the dense eigensolver must agree on the smallest eigenvalue to this fraction
#: of ||H|| (ARPACK's requested tolerance is 1e-10).
LANCZOS_RTOL = 1e-7


# --------------------------------------------------------------------------- truth, symmetry (section 5)
def check_truth_global_minimum(
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
    >>> res = check_truth_global_minimum(TaskFamily.random(d=4, k=1, T=3, seed=0))
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
        detail=f"F={value:.1e}, |grad F|/gradient scale={grad_rel:.1e}",
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


# --------------------------------------------------------------------------- (A_SR, 0) (section 9)
def _offsets_equal(family: TaskFamily) -> bool:
    spread = np.abs(family.offsets - family.offsets.mean(axis=0)).max()
    return bool(spread <= 1e-12 * max(1.0, np.abs(family.offsets).max()))


def check_zero_saddle(
    source: Source, rank: int = 1, *, enforce_assumptions: bool = True
) -> CheckResult:
    """For T >= 2 and unequal offsets, ``(A_SR, U = 0)`` is a strict saddle (docs/theory.md 9).

    At ``U = 0`` the Hessian is block diagonal: ``2 sum_t Sxx_t`` on ``A`` and
    ``(G_t + G_t^T) (x) I_r`` on ``U_t``, with ``G_t = 2 (A_SR Sxx_t - Syx_t)``. At SR's base
    ``sum_t G_t = 0``, so unless every ``G_t + G_t^T`` vanishes one of them has a negative
    eigenvalue. With identity covariance in the population ``G_t = 2 (mean M - M_t)``
    (``M_t = U*_t U*_t^T``), so ``lambda_min(H) = -4 max_t lambda_max(M_t - mean M)`` exactly;
    that closed form is compared with the dense Hessian's smallest eigenvalue. On other
    sources only the sign is checked.

    Parameters
    ----------
    source : TaskFamily or TaskData
        ``T >= 2`` (and, for a family, offsets not all equal) unless
        ``enforce_assumptions=False`` (the controls).
    rank : int, default=1
        Adapter rank r.

    Returns
    -------
    CheckResult
        ``measured``: ``lambda_min(H) / ||H||`` (predicted negative).
    """
    _check_source(source)
    rank = check_int(rank, "rank", maximum=source.d)
    if enforce_assumptions and (
        source.T < 2 or (isinstance(source, TaskFamily) and _offsets_equal(source))
    ):
        raise ValueError("the saddle claim needs T >= 2 and offsets that are not all equal.")
    A = standard_retraining(source)
    U = np.zeros((source.T, source.d, rank))
    grad_rel = relative_gradient_norm(source, lora_ml_gradient(source, A, U))
    curv = landscape.hessian_min_eigenvalue(source, A, U, method="dense")
    norm = max(curv.norm, np.finfo(float).tiny)
    rel = curv.min_eigenvalue / norm
    closed = ""
    value_ok = True
    predicted = -1.0
    if isinstance(source, TaskFamily) and source.isotropic:
        M = source.offsets
        spread = max(float(np.linalg.eigvalsh(Mt - M.mean(axis=0))[-1]) for Mt in M)
        predicted_value = min(2.0 * source.T, -4.0 * spread) + 0.0  # + 0.0: no "-0" in the text
        value_ok = abs(curv.min_eigenvalue - predicted_value) <= SADDLE_VALUE_RTOL * norm
        predicted = predicted_value / norm
        closed = f", closed form -4 max_t lambda_max(M_t - mean M)={predicted_value:.4g}"
    stationary = grad_rel <= STATIONARY_RTOL
    ok = stationary and value_ok and rel < -CURVATURE_RTOL
    m = margin(CURVATURE_RTOL, -rel) if rel < 0 else -MARGIN_CAP
    return CheckResult(
        "zero-saddle", "T >= 2, unequal offsets: (A_SR, U = 0) is a strict saddle", "project (sec. 9)",
        float(predicted), float(rel), CURVATURE_RTOL, ok, abs(m) if ok else -abs(m), 1, "theorem",
        f"{_source_label(source)}, T={source.T}: |grad F|/gradient scale={grad_rel:.1e}, "
        f"lambda_min(H)={curv.min_eigenvalue:.4g}, lambda_min(H)/|H|={rel:.3g}{closed}",
    )


def check_zero_global_t1(family: TaskFamily, A: ArrayLike | None = None) -> CheckResult:
    """For T = 1, ``(A_SR, U = 0)`` is a global minimum: ``A_SR = W*_1`` (docs/theory.md 9).

    Parameters
    ----------
    family : TaskFamily with T = 1
    A : array_like of shape (d, d), optional
        The base (default ``A_SR``; a perturbed one is the control).
    """
    family = _check_family(family)
    if family.T != 1:
        raise ValueError(f"this is the T = 1 claim, got T={family.T} (see check_zero_saddle).")
    A = _base(family, A, "A")
    U = np.zeros((1, family.d, 1))
    cert = stationary.certify_stationary_point(family, A, U)
    tol = objective_tolerance(family)
    return make_result(
        "zero-t1-global", "T = 1: (A_SR, U = 0) is a global minimum (zero loss)", "project (sec. 9)",
        0.0, cert.objective, cert.objective, tol, kind="consistency",
        holds=cert.kind == "global minimum",
        detail=f"{cert.kind}: F={cert.objective:.1e}, |grad F|={cert.grad_norm:.1e}",
    )


def check_zero_is_stationary(source: Source, rank: int = 1) -> CheckResult:
    """``(A_SR, U = 0)``: a global minimum when T = 1, a strict saddle otherwise.

    Dispatches to :func:`check_zero_global_t1` (a population with T = 1) or
    :func:`check_zero_saddle`; kept for callers of the former single check, which asserted
    only a zero gradient.
    """
    _check_source(source)
    if source.T == 1 and isinstance(source, TaskFamily):
        return check_zero_global_t1(source)
    return check_zero_saddle(source, rank)


# --------------------------------------------------------------------------- Theorem 2 (section 5)
def check_rank_bound(
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
        raise ValueError(f"the 2k bound is for adapters of the truth's rank k={family.k}, got r={r}.")
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
def check_exact_recovery(
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
    family = _check_family(family)
    if enforce_assumptions and (family.T < 3 or not offset_columns_independent(family)):
        raise ValueError(
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
        "recovery-t3", "T >= 3, independent offsets: global minima recover A* and U*_t U*_t^T",
        "Thm 3", 0.0, error, error, RECOVERY_RTOL,
        detail=f"T={family.T}, k={family.k}, d={family.d}: |A^-A*|_F/scale={base_err:.1e}, "
        f"max_t |U^_t U^_t^T - U*_t U*_t^T|_F/scale={off_err:.1e}",
    )


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


# --------------------------------------------------------------------------- Theorem 4 (section 7)
def check_hyperbolic_family(family: TaskFamily, s: float | ArrayLike) -> CheckResult:
    """T = 2: the hyperbolic rotation gives a zero-loss minimum with ``A^ != A*``, rank <= 2k.

    An identity of the construction (docs/theory.md 7.1); ``s = 0`` gives ``A^ = A*`` (a
    control).
    """
    A_hat, U_hat = hyperbolic_minimum(family, s)
    value = lora_ml_objective(family, A_hat, U_hat)
    diff = A_hat - family.A_star
    shift = float(np.linalg.norm(diff)) / problem_scale(family)
    rank = numerical_rank(diff, rtol=1e-9) if np.any(diff) else 0
    tol = objective_tolerance(family)
    ok = value <= tol and rank <= 2 * family.k and shift >= COUNTEREXAMPLE_MIN_RSHIFT
    return make_result(
        "t2-hyperbolic", "T = 2: hyperbolic rotations give zero-loss minima with A^ != A*",
        "Thm 4", 0.0, value, value, tol, kind="consistency", holds=ok,
        detail=f"rapidities s={np.round(np.atleast_1d(s), 4).tolist()}: F={value:.1e}, "
        f"|A^-A*|_F/scale={shift:.3f}, rank(A^-A*)={rank}",
    )


def check_strict_saddle(
    family: TaskFamily, points: Sequence[tuple[ArrayLike, ArrayLike]], *,
    min_nonglobal: int = MIN_NONGLOBAL_STATIONARY, enforce_assumptions: bool = True,
) -> CheckResult:
    """T = 2: every stationary point that is not a global minimum has negative curvature (Theorem 4).

    Each point is classified by :func:`~lowrank_theory.stationary.certify_stationary_point`;
    non-stationary points are skipped. The claim fails on a stationary point that is neither
    a global minimum nor a strict saddle, and -- so that it cannot pass vacuously -- when fewer
    than ``min_nonglobal`` non-global stationary points were examined (docs/theory.md 7.2).

    Parameters
    ----------
    family : TaskFamily with T = 2 (unless ``enforce_assumptions=False``)
    points : sequence of (A, U)
    min_nonglobal : int, default=MIN_NONGLOBAL_STATIONARY

    Returns
    -------
    CheckResult
        ``measured``: the largest ``lambda_min(H) / ||H||`` over non-global stationary points
        (predicted negative); margin: decades by which its magnitude exceeds
        ``CURVATURE_RTOL``.
    """
    family = _check_family(family)
    if enforce_assumptions and family.T != 2:
        raise ValueError(f"the strict-saddle claim is for T = 2 tasks, got T={family.T}.")
    min_nonglobal = check_int(min_nonglobal, "min_nonglobal", minimum=0)
    worst, n_stat, n_saddle, n_global, bad = -np.inf, 0, 0, 0, []
    for A, U in points:
        cert = stationary.certify_stationary_point(family, A, U)
        if cert.kind == "not stationary":
            continue
        n_stat += 1
        if cert.kind == "global minimum":
            n_global += 1
            continue
        rel = cert.min_eigenvalue / max(cert.hessian_norm, 1e-300)
        worst = max(worst, rel)
        if cert.kind == "strict saddle":
            n_saddle += 1
        else:
            bad.append(cert.kind)
    n_nonglobal = n_stat - n_global
    measured = float(worst) if np.isfinite(worst) else 0.0
    ok = not bad and n_nonglobal >= min_nonglobal
    m = margin(CURVATURE_RTOL, -measured) if measured < 0 else -MARGIN_CAP
    detail = (f"T={family.T}: {n_stat} stationary points: {n_global} global, {n_saddle} strict "
              f"saddles (at least {min_nonglobal} non-global needed)")
    if bad:
        detail += f", violations: {bad}"
    return CheckResult(
        "t2-strict-saddle", "T = 2: every non-global stationary point has a negative Hessian eigenvalue",
        "Thm 4", -1.0, measured, CURVATURE_RTOL, ok, abs(m) if ok else -abs(m), 1, "theorem", detail,
    )


def check_gradient_finds_global(
    family: TaskFamily, rank: int | None = None, n_starts: int = 5,
    seed: int | np.random.Generator | None = 0, *, enforce_assumptions: bool = True,
) -> CheckResult:
    """T = 2: gradient methods from random starts reach a global minimum (strict saddle consequence).

    With T >= 3 spurious minima can stop them (the control, docs/theory.md 7.2 and 6.3).
    """
    family = _check_family(family)
    if enforce_assumptions and family.T != 2:
        raise ValueError(f"this is the T = 2 claim, got T={family.T}.")
    rank = family.k if rank is None else check_int(rank, "rank", maximum=family.d)
    n_starts = check_int(n_starts, "n_starts")
    minima, other = global_minima_from_random_starts(family, rank, n_starts, seed)
    frac_fail = other / n_starts
    return make_result(
        "t2-gradient-global", "T = 2: L-BFGS from random starts reaches a global minimum",
        "Thm 4", 0.0, frac_fail, frac_fail, 0.0, holds=other == 0,
        detail=f"T={family.T}: {len(minima)}/{n_starts} starts reached zero loss",
    )


def check_rank_3k_fine_tuning(
    family: TaskFamily, A_hat: ArrayLike, new_task: TaskFamily
) -> CheckResult:
    """T = 2: from a global minimum a rank-3k adapter reaches the new task; rank 3k - 1 does not.

    ``W*_new - A^ = (A* - A^) + U*_new U*_new^T`` has rank at most ``2k + k``, and exactly 3k
    for a generic hyperbolic minimum (``3k <= d``), so rank ``3k - 1`` leaves its smallest
    singular value (docs/theory.md 7.3). From ``A^ = A*`` (a control) rank k already suffices.
    """
    family = _check_family(family)
    new_task = _check_family(new_task, "new_task")
    A_hat = check_array(A_hat, "A_hat", (family.d, family.d))
    r3 = 3 * family.k
    if r3 > family.d:
        raise ValueError(f"the claim needs 3k <= d, got 3k={r3} > d={family.d}.")
    M = new_task.W_star[0] - A_hat
    loss3 = fine_tune(A_hat, new_task, rank=r3, n=None).loss
    loss_short = fine_tune(A_hat, new_task, rank=r3 - 1, n=None).loss
    loss1 = fine_tune(A_hat, new_task, rank=family.k, n=None).loss
    tol = objective_tolerance(new_task)
    short_ok = loss_short > FLOOR_ZERO_RTOL * float(np.sum(M**2))
    return make_result(
        "t2-rank-3k", "T = 2: rank 3k reaches the new task from a global minimum, rank 3k-1 does not",
        "Thm 4", 0.0, loss3, loss3, tol, kind="consistency", holds=loss3 <= tol and short_ok,
        detail=f"rank-3k loss={loss3:.1e}, rank-(3k-1) loss={loss_short:.3g}, "
        f"rank-k loss={loss1:.3g}",
    )


# --------------------------------------------------------------------------- T = 1 (section 8)
def check_t1_nonidentifiable(
    family: TaskFamily, n_constructions: int = 5, seed: int | np.random.Generator | None = 0,
    *, points: Sequence[tuple[ArrayLike, ArrayLike]] | None = None,
) -> CheckResult:
    """T = 1: ``A`` is not identified -- any ``A = W*_1 - P`` with ``P`` PSD of rank <= k is optimal.

    Checks that each point has zero loss, that ``rank(A - A*) <= 2k``, and that the bases are
    distinct (``measured``: the smallest pairwise distance relative to the scale, predicted
    positive). The points default to ``n_constructions`` random ones (docs/theory.md 8); two
    copies of the truth (a control) are not distinct.
    """
    family = _check_family(family)
    if family.T != 1:
        raise ValueError(f"non-identifiability is the T = 1 claim, got T={family.T}.")
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


# --------------------------------------------------------------------------- spurious minima (section 6)
def check_spurious_minimum(family: TaskFamily, A: ArrayLike, U: ArrayLike) -> CheckResult:
    """Certify a spurious local minimum: gradient ~ 0, Hessian positive definite, objective > 0.

    Positive definiteness (modulo the rotation symmetry) with a vanishing gradient is the
    second-order sufficient condition for a strict local minimum; the population global value
    is 0 (attained by the truth), so a positive objective makes it spurious (docs/theory.md 6.3).

    Returns
    -------
    CheckResult
        ``measured``: ``lambda_min(H) / ||H||`` modulo the symmetry (predicted > 0); the detail
        gives the gradient norm and the excess objective.
    """
    family = _check_family(family)
    cert = stationary.certify_stationary_point(family, A, U)
    rel = cert.min_eigenvalue_modulo_symmetry / max(cert.hessian_norm, 1e-300)
    ok = cert.kind == "spurious local minimum"
    m = margin(CURVATURE_RTOL, rel) if rel > 0 else -MARGIN_CAP
    return CheckResult(
        "spurious-minima", "T >= 3: spurious local minima exist (gradient 0, Hessian PD, F > 0)",
        "appendix", 1.0, float(rel), CURVATURE_RTOL, ok, abs(m) if ok else -abs(m), 1, "theorem",
        f"{cert.kind}: F={cert.objective:.4g} > 0, |grad F|={cert.grad_norm:.1e} "
        f"(tolerance {cert.grad_tolerance:.1e}), lambda_min(H) modulo symmetry="
        f"{cert.min_eigenvalue_modulo_symmetry:.3g}, "
        f"independent offset columns={offset_columns_independent(family)}",
    )


# --------------------------------------------------------------------------- exact Hessian
def check_exact_hessian(
    source: Source, rank: int = 1, seed: int | np.random.Generator | None = 0,
    asymmetric: bool = False, *, hvp: Callable[..., tuple[NDArray, ...]] | None = None,
) -> CheckResult:
    """The exact Hessian passes the Taylor-remainder test and Lanczos agrees with dense eigh.

    Prerequisite of the strict-saddle and spurious-minimum certificates (docs/theory.md 14).

    Parameters
    ----------
    source : TaskFamily or TaskData
    rank : int, default=1
    seed : int, Generator or None
    asymmetric : bool, default=False
    hvp : callable, optional
        The Hessian-vector product under test (default
        :func:`~lowrank_theory.landscape.lora_ml_hvp`; a scaled one is the control).
    """
    _check_source(source)
    rng = as_seed_generator(seed)
    T, d = source.T, source.d
    A = rng.standard_normal((d, d))
    U = rng.standard_normal((T, d, rank))
    V = rng.standard_normal((T, d, rank)) if asymmetric else None
    h, e1, e2 = landscape.taylor_remainder_slopes(source, A, U, V, seed=rng, hvp=hvp)
    s1 = landscape.remainder_slope(h, e1)
    s2 = landscape.remainder_slope(h, e2)
    dense = landscape.hessian_min_eigenvalue(source, A, U, V, method="dense")
    lanczos = landscape.hessian_min_eigenvalue(source, A, U, V, method="lanczos", seed=rng)
    eig_err = abs(dense.min_eigenvalue - lanczos.min_eigenvalue) / max(dense.norm, 1e-300)
    slope_err = max(0.0, 3.0 - s1, 4.0 - s2)
    error = max(slope_err / TAYLOR_SLOPE_TOL, eig_err / LANCZOS_RTOL) * TAYLOR_SLOPE_TOL
    return make_result(
        "hessian-exact",
        "exact gradient/Hessian: symmetric Taylor remainders O(h^3), O(h^4); Lanczos = dense",
        "prerequisite", 4.0, s2, error, TAYLOR_SLOPE_TOL, kind="consistency",
        detail=f"{_source_label(source)}: remainder slopes {s1:.3f} (gradient), {s2:.3f} (Hessian); "
        f"|lambda_min Lanczos - lambda_min dense|/|H|={eig_err:.1e}",
    )

