"""Claims about standard retraining and adaptation from its base: Theorem 1 and its corollary.

Each ``check_*`` function tests one claim on one instance and returns a
:class:`~lowrank_theory.check_result.CheckResult`. The thing under test is an argument whose
default is the library's answer (SR's base), so a negative control can hand it a near miss --
a base off by 1e-3, a too-large adapter rank -- and see the check fail. The claims hold for any
input covariance shared by the tasks (docs/theory.md, section 4.5 derives them); the rank
claim also for one covariance per task. Section numbers refer to docs/theory.md (section 4).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._validation import as_seed_generator, check_array, check_int
from lowrank_theory.adaptation import fine_tune
from lowrank_theory.losses import Source, loss_gradient, statistics
from lowrank_theory.metrics import eckart_young_tail
from lowrank_theory.retraining import standard_retraining
from lowrank_theory.tasks import TaskFamily

from .constructions import _check_family
from .result import (
    MARGIN_CAP,
    CheckResult,
    NotApplicable,
    _check_source,
    _source_label,
    make_result,
    objective_tolerance,
    relative_gradient_norm,
)

__all__ = [
    "check_sr_global_minimum",
    "check_sr_rank",
    "check_sr_floor",
    "check_sr_floor_general_covariance",
    "check_sr_floor_every_n",
    "check_ft_sr_plateau",
    "check_sr_adapt_rank",
    "predicted_sr_floor",
]

# --------------------------------------------------------------------------- tolerances
#: Relative gradient norm of SR at its closed form: a linear solve of a well-conditioned
#: system leaves ~1e-15 relative residual; 1e-9 leaves room for condition numbers up to 1e6.
SR_GRAD_RTOL = 1e-9
#: Relative difference between the core's SR and an independent least-squares solution.
SR_MATCH_RTOL = 1e-8
#: Singular values of ``A_SR - A*`` below this fraction of the largest count as zero: the
#: matrix is an exact sum of kT outer products, so its true zeros sit at ~1e-16.
SR_RANK_RTOL = 1e-10
#: Relative agreement of the best rank-r fine-tuning error with the residual's spectral tail
#: (both are eigen/singular-value computations on the same d x d matrix).
FLOOR_RTOL = 1e-9
#: A spectral tail below this fraction of ``||M||_F^2`` is zero: an exact rank-r residual
#: leaves squared round-off, ~1e-30 relative, while the smallest squared singular value of a
#: generic residual, though positive, was measured as low as 8.5e-13 relative (seeds 0-99,
#: covariances up to condition 100). 1e-20 separates the two with five decades on each side.
FLOOR_ZERO_RTOL = 1e-20
#: From A_SR the excess loss at the largest n must be within this relative distance of the
#: population floor (the estimation part k d sigma^2 / n is ~1e-5 of the floor there).
PLATEAU_RTOL = 0.05
def _base(source: Source, base: ArrayLike | None, name: str = "base") -> NDArray:
    """The base under test: the given one, or standard retraining's."""
    if base is None:
        return standard_retraining(source)
    return check_array(base, name, (source.d, source.d))


def _shared_covariance(family: TaskFamily) -> NDArray[np.float64] | None:
    """The family's one input covariance (None: identity); refuses one covariance per task."""
    if family.Sigma is not None and family.Sigma.ndim == 3:
        raise NotApplicable("the claim is for one input covariance shared by the tasks "
                            "(A_SR is then the mean of the W*_t); this family has one per task.")
    return family.Sigma


def _isotropic(family: TaskFamily, claim: str) -> TaskFamily:
    family = _check_family(family)
    if not family.isotropic:
        raise NotApplicable(f"{claim} is stated for identity input covariance; pass Sigma=None "
                            "(its general-covariance form is a check of its own).")
    return family


def predicted_sr_floor(
    family: TaskFamily, new_task: TaskFamily, rank: int | None = None
) -> float:
    """Theorem 1's floor from the offsets alone: no SR solve, no fine-tuning, no d x d residual.

    With a covariance ``Sigma = L L^T`` shared by the tasks, ``A_SR = (1/T) sum_t W*_t``, so
    ``M = W*_new - A_SR = C D C^T`` with ``C = [U*_new, U*_1, ..., U*_T]`` (d x m,
    ``m = k(T+1)``) and ``D = diag(I_k, -I_kT / T)``. The floor of a rank-r adapter is the sum
    of the squared singular values of ``M Sigma^{1/2}`` (those of ``M L``) beyond the r
    largest. With the QR factorisation ``C = Q_C R_C`` (``Q_C`` orthonormal columns),
    ``M L = Q_C (R_C D C^T L)``, so they are the singular values of the small matrix
    ``R_C D C^T L``, which is what is computed (docs/theory.md, sections 4.3 and 4.5).

    Parameters
    ----------
    family : TaskFamily
        One covariance shared by the tasks (or the identity).
    new_task : TaskFamily with T = 1
        The same covariance.
    rank : int, optional
        Adapter rank r (default k).

    Returns
    -------
    float

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=6, k=1, T=3, seed=0)
    >>> predicted_sr_floor(fam, fam.new_task(seed=1), rank=4) < 1e-20  # rank k(T+1) reaches it
    True
    """
    family = _check_family(family)
    new_task = _check_family(new_task, "new_task")
    Sigma = _shared_covariance(family)
    k, T = family.k, family.T
    rank = k if rank is None else check_int(rank, "rank", maximum=family.d)
    C = np.concatenate([new_task.U_star[0], *family.U_star], axis=1)
    D = np.concatenate([np.ones(new_task.k), -np.ones(k * T) / T])
    _, R = scipy.linalg.qr(C, mode="economic")
    right = C.T if Sigma is None else C.T @ scipy.linalg.cholesky(Sigma, lower=True)
    s = scipy.linalg.svdvals(R @ (D[:, None] * right))
    return float(np.sum(s[rank:] ** 2))


# --------------------------------------------------------------------------- SR (section 4)
def check_sr_global_minimum(source: Source, A: ArrayLike | None = None) -> CheckResult:
    """SR's closed form is the global minimiser of ``A -> sum_t L_t(A)`` (docs/theory.md 4.1).

    The objective is a convex quadratic with Hessian ``2 sum_t Sxx_t (x) I``; when that is
    positive definite a zero gradient is necessary and sufficient for the unique global
    minimum. Checked: (i) ``lambda_min(sum_t Sxx_t) > 0`` (strict convexity); (ii) the
    gradient ``sum_t 2 (A Sxx_t - Syx_t)`` vanishes; (iii) ``A`` matches an independent
    computation -- the closed form ``(sum_t W*_t Sigma_t)(sum_t Sigma_t)^{-1}`` in the
    population, ``numpy.linalg.lstsq`` on the pooled raw samples for a sample.

    Parameters
    ----------
    source : TaskFamily or TaskData
    A : array_like of shape (d, d), optional
        The base to certify (default: ``standard_retraining(source)``).

    Returns
    -------
    CheckResult
        ``measured``: the larger of the relative gradient norm and the relative mismatch.
    """
    _check_source(source)
    stats = statistics(source)
    A_sr = _base(source, A, "A")
    pooled = stats.Sxx.sum(axis=0)
    lam_min = float(np.linalg.eigvalsh(pooled)[0])
    grad_rel = relative_gradient_norm(source, [loss_gradient(stats, A_sr).sum(axis=0)])
    if isinstance(source, TaskFamily):
        S = source.task_covariances()
        rhs = np.einsum("tij,tjk->ik", source.W_star, S).T
        ref = scipy.linalg.solve(pooled, rhs, assume_a="pos").T
    else:
        X = source.X.reshape(-1, source.d)
        Y = source.Y.reshape(-1, source.d)
        ref = np.linalg.lstsq(X, Y, rcond=None)[0].T
    mismatch = float(np.linalg.norm(A_sr - ref)) / max(1.0, float(np.linalg.norm(ref)))
    error = max(grad_rel / SR_GRAD_RTOL, mismatch / SR_MATCH_RTOL) * SR_GRAD_RTOL
    return make_result(
        "sr-global-minimum", "SR closed form is the global minimiser (zero gradient, strictly convex)",
        "setup of Thm 1", 0.0, max(grad_rel, mismatch), error, SR_GRAD_RTOL, kind="consistency",
        holds=lam_min > 0 and error <= SR_GRAD_RTOL,
        detail=f"{_source_label(source)}: |grad|/gradient scale={grad_rel:.1e}, relative mismatch "
        f"with least squares={mismatch:.1e}, lambda_min(sum_t Sxx_t)={lam_min:.3g}",
    )


def check_sr_rank(family: TaskFamily, A: ArrayLike | None = None) -> CheckResult:
    """``rank(A_SR - A*) = min(kT, d)`` for generic offsets (Theorem 1, docs/theory.md 4.2, 4.5).

    In the population ``A_SR - A* = (sum_t M_t Sigma_t)(sum_t Sigma_t)^{-1}`` with
    ``M_t = U*_t U*_t^T``: with one shared covariance (the identity included) that is the mean
    offset ``(1/T) sum_t M_t``, a sum of ``kT`` PSD outer products whose rank is that of
    ``[U*_1 ... U*_T]``, ``min(kT, d)`` unless the columns are degenerate (collinear offsets:
    the negative control); with one covariance per task it is ``sum_t M_t Sigma_t`` times an
    invertible matrix, of the same generic rank.

    Parameters
    ----------
    family : TaskFamily
        Any SPD input covariance(s).
    A : array_like of shape (d, d), optional
        The SR base (default: ``standard_retraining(family)``).

    Returns
    -------
    CheckResult
        ``predicted = min(kT, d)``, ``measured`` = numerical rank (threshold
        ``SR_RANK_RTOL``); margin in decades between the singular values and the threshold.
    """
    family = _check_family(family)
    diff = _base(family, A, "A") - family.A_star
    s = scipy.linalg.svdvals(diff)
    predicted = min(family.k * family.T, family.d)
    rel = s / max(s[0], np.finfo(float).tiny)
    measured = int(np.sum(rel > SR_RANK_RTOL))
    # Headroom: the last kept singular value above the threshold, the first dropped below.
    head = rel[predicted - 1] / SR_RANK_RTOL
    if predicted < family.d:
        head = min(head, SR_RANK_RTOL / max(rel[predicted], 1e-300))
    m = float(np.clip(np.log10(max(head, 1e-300)), -MARGIN_CAP, MARGIN_CAP))
    ok = measured == predicted
    return CheckResult(
        "sr-rank", "rank(A_SR - A*) = min(kT, d) for generic offsets", "Thm 1",
        predicted, measured, SR_RANK_RTOL, ok, abs(m) if ok else -abs(m), 1, "theorem",
        f"d={family.d}, k={family.k}, T={family.T}, {_covariance_label(family)}: "
        f"s_min(kT)/s_max={rel[predicted - 1]:.1e} (singular values of A_SR - A*)",
    )


def _covariance_label(family: TaskFamily) -> str:
    if family.Sigma is None:
        return "Sigma = I"
    S = family.Sigma if family.Sigma.ndim == 3 else family.Sigma[None]
    cond = max(float(np.linalg.cond(x)) for x in S)
    return f"Sigma {'per task' if family.Sigma.ndim == 3 else 'shared'}, condition {cond:.3g}"


def _floor_check(
    name: str, claim: str, family: TaskFamily, new_task: TaskFamily, base: ArrayLike | None,
    rank: int | None,
) -> CheckResult:
    new_task = _check_family(new_task, "new_task")
    Sigma = _shared_covariance(family)
    k = family.k
    if family.d <= k:
        raise NotApplicable(f"the floor needs d > k (a rank-k adapter fits any d x d residual "
                            f"when d = k), got d={family.d}, k={k}.")
    rank = k if rank is None else check_int(rank, "rank", maximum=family.d)
    A = _base(family, base)
    predicted = predicted_sr_floor(family, new_task, k)
    M = new_task.W_star[0] - A
    scale = float(np.trace(M @ (np.eye(family.d) if Sigma is None else Sigma) @ M.T))
    positive = predicted > FLOOR_ZERO_RTOL * scale
    measured = fine_tune(A, new_task, rank=rank, n=None).loss
    error = abs(measured - predicted) / max(predicted, np.finfo(float).tiny)
    return make_result(
        name, claim, "Thm 1 corollary", predicted, measured, error, FLOOR_RTOL,
        holds=positive and error <= FLOOR_RTOL,
        detail=f"{_covariance_label(family)}: floor={predicted:.4g} (from the offsets alone, "
        f"k={k}), rank-{rank} population fine-tuning loss from A_SR / floor="
        f"{measured / max(predicted, np.finfo(float).tiny):.10f}",
    )


def check_sr_floor(
    family: TaskFamily, new_task: TaskFamily, *, base: ArrayLike | None = None,
    rank: int | None = None,
) -> CheckResult:
    """From ``A_SR``, a rank-k adapter cannot reach a new task: the floor (Theorem 1's corollary).

    With ``M = W*_new - A_SR`` (identity covariance) the population excess loss of a rank-k
    adapter is ``||M - U V^T||_F^2 >= floor = sum_{i>k} s_i(M)^2`` (Eckart-Young). The
    prediction comes from the theorem's formula ``A_SR - A* = (1/T) sum_t U*_t U*_t^T``
    alone (:func:`predicted_sr_floor`: a QR factorisation of the offsets, no SR solve and no
    SVD of the d x d residual); the measurement is population fine-tuning (``fine_tune``) from the library's
    ``standard_retraining``. Checked: the floor is positive and the two agree to
    ``FLOOR_RTOL`` (docs/theory.md 4.3).

    Parameters
    ----------
    family, new_task : TaskFamily
        Identity covariance, ``d > k``.
    base : array_like of shape (d, d), optional
        The retrained base (default ``A_SR``; one off by 1e-3 is the control).
    rank : int, optional
        Rank of the fine-tuned adapter (default k).

    Returns
    -------
    CheckResult
        ``predicted``: the floor; ``measured``: the population fine-tuning loss.
    """
    family = _isotropic(family, "the floor of sr-floor")
    return _floor_check("sr-floor", "rank-k fine-tuning from A_SR keeps a positive floor, "
                        "predicted from the offsets", family, new_task, base, rank)


def check_sr_floor_general_covariance(
    family: TaskFamily, new_task: TaskFamily, *, base: ArrayLike | None = None,
    rank: int | None = None,
) -> CheckResult:
    """Theorem 1's floor under an input covariance ``Sigma`` shared by the tasks.

    ``A_SR`` is still the mean of the ``W*_t`` (``Sigma`` cancels from the normal equations),
    and a rank-k adapter's excess loss is ``||(M - U V^T) Sigma^{1/2}||_F^2``; since
    ``rank(D Sigma^{1/2}) = rank(D)`` its minimum is the Eckart-Young tail of
    ``M Sigma^{1/2}``, positive because ``rank(M Sigma^{1/2}) = rank(M) = min(k(T+1), d) > k``
    (docs/theory.md 4.5). Predicted from the offsets and ``Sigma`` alone
    (:func:`predicted_sr_floor`), measured by population fine-tuning from
    ``standard_retraining``.

    Parameters
    ----------
    family, new_task : TaskFamily
        One SPD covariance shared by the tasks and the new task (the identity too), ``d > k``.
    base, rank
        As in :func:`check_sr_floor`.
    """
    family = _check_family(family)
    return _floor_check("sr-floor-general-covariance", "under a shared covariance Sigma, "
                        "rank-k fine-tuning from A_SR keeps the floor tail_k((W*_new - A_SR) "
                        "Sigma^(1/2))", family, new_task, base, rank)


def check_sr_floor_every_n(
    family: TaskFamily, new_task: TaskFamily, ns: Sequence[int] = (100, 1000, 10_000, 100_000),
    seed: int | np.random.Generator | None = 0, *, base: ArrayLike | None = None,
    rank: int | None = None,
) -> CheckResult:
    """Fine-tuning on ``n`` samples never goes below the rank-k population floor, for every n.

    The floor is the minimum of the population loss over rank-k adapters (in the ``Sigma``
    metric of a shared covariance), so no adapter fitted on samples can beat it: an identity
    (docs/theory.md 4.3), checked with reduced-rank regression for each n in ``ns``.
    ``rank > k`` (a control) does beat it.

    Returns
    -------
    CheckResult
        ``predicted``: the floor; ``measured``: the smallest loss over n; the error is the
        relative deficit below the floor.
    """
    family = _check_family(family)
    new_task = _check_family(new_task, "new_task")
    Sigma = _shared_covariance(family)
    k = family.k
    rank = k if rank is None else check_int(rank, "rank", maximum=family.d)
    rng = as_seed_generator(seed)
    A = _base(family, base)
    floor = eckart_young_tail(new_task.W_star[0] - A, k, Sigma)
    losses = [fine_tune(A, new_task, rank=rank, n=int(n), seed=rng).loss for n in ns]
    deficit = max(0.0, (floor - min(losses)) / max(floor, np.finfo(float).tiny))
    ratios = ", ".join(f"n={n}: {loss / max(floor, 1e-300):.4f}" for n, loss in zip(ns, losses))
    return make_result(
        "sr-floor-every-n", "no rank-k adapter fitted on n samples goes below the floor, for any n",
        "Thm 1 corollary", floor, min(losses), deficit, FLOOR_RTOL, kind="consistency",
        detail=f"{_covariance_label(family)}: floor={floor:.4g}; loss/floor {ratios}",
    )


def check_ft_sr_plateau(
    family: TaskFamily,
    new_task: TaskFamily,
    ns: Sequence[int] = (100, 1000, 10_000, 100_000),
    seed: int | np.random.Generator | None = 0,
    *,
    base: ArrayLike | None = None,
) -> CheckResult:
    """From ``A_SR`` the fine-tuning excess loss plateaus at the population floor as n grows.

    Parameters
    ----------
    family, new_task : TaskFamily
        One covariance shared by the tasks (the identity too).
    ns : sequence of int
    seed : int, Generator or None
    base : array_like of shape (d, d), optional
        Default ``A_SR``; from ``A*`` the loss falls as 1/n instead (a control).

    Returns
    -------
    CheckResult
        ``predicted = 1``: loss / floor at the largest n; error ``|ratio - 1|`` against
        ``PLATEAU_RTOL`` (docs/theory.md 4.3).
    """
    family = _check_family(family)
    new_task = _check_family(new_task, "new_task")
    Sigma = _shared_covariance(family)
    rng = as_seed_generator(seed)
    A = _base(family, base)
    floor = max(eckart_young_tail(new_task.W_star[0] - A, family.k, Sigma),
                np.finfo(float).tiny)
    losses = np.array([fine_tune(A, new_task, rank=family.k, n=int(n), seed=rng).loss for n in ns])
    slope = float(np.polyfit(np.log(np.asarray(ns, float)), np.log(losses), 1)[0])
    ratio = float(losses[-1] / floor)
    return make_result(
        "ft-sr-plateau", "from A_SR the fine-tuning loss plateaus at the floor (no 1/n decay)",
        "Thm 1 corollary", 1.0, ratio, abs(ratio - 1.0), PLATEAU_RTOL,
        detail=f"{_covariance_label(family)}: loss/floor at n={ns[-1]}: {ratio:.4f}; log-log "
        f"slope of the loss in n={slope:.4f} (from A*: -1)",
    )


def check_sr_adapt_rank(
    family: TaskFamily, new_task: TaskFamily, *, base: ArrayLike | None = None
) -> CheckResult:
    """From ``A_SR`` a rank-``k(T+1)`` adapter reaches a new task; rank ``k(T+1) - 1`` does not.

    ``W*_new - A_SR = U*_new U*_new^T - (1/T) sum_t U*_t U*_t^T`` is a combination of
    ``k(T+1)`` outer products, of rank ``k(T+1)`` for generic offsets (``k(T+1) <= d``), and
    so is its product with ``Sigma^{1/2}`` for a shared covariance: the Eckart-Young tail is
    zero at that rank and positive one rank below (the sufficiency half of Theorem 1's
    corollary, docs/theory.md 4.4).

    Parameters
    ----------
    family, new_task : TaskFamily
        One covariance shared by the tasks (the identity too), ``k(T+1) <= d``.
    base : array_like of shape (d, d), optional
        Default ``A_SR``; from ``A*`` rank k already suffices (a control).

    Returns
    -------
    CheckResult
        ``predicted``: 0 (the rank-k(T+1) loss); ``measured``: that loss; the rank-(k(T+1)-1)
        loss must equal its positive spectral tail.
    """
    family = _check_family(family)
    new_task = _check_family(new_task, "new_task")
    Sigma = _shared_covariance(family)
    r_full = family.k * (family.T + 1)
    if r_full > family.d:
        raise NotApplicable(f"the claim needs k(T+1) <= d, got k(T+1)={r_full} > d={family.d}.")
    A = _base(family, base)
    M = new_task.W_star[0] - A
    scale = eckart_young_tail(M, 0, Sigma)
    full = fine_tune(A, new_task, rank=r_full, n=None).loss
    short = fine_tune(A, new_task, rank=r_full - 1, n=None).loss
    tail = eckart_young_tail(M, r_full - 1, Sigma)
    tol = objective_tolerance(new_task)
    short_ok = tail > FLOOR_ZERO_RTOL * scale and abs(short - tail) <= FLOOR_RTOL * tail
    return make_result(
        "sr-adapt-rank", "from A_SR rank k(T+1) reaches the new task, rank k(T+1)-1 does not",
        "Thm 1 corollary", 0.0, full, full, tol, holds=full <= tol and short_ok,
        detail=f"{_covariance_label(family)}, k(T+1)={r_full}: loss={full:.1e}; rank "
        f"{r_full - 1}: loss={short:.4g} (spectral tail {tail:.4g}, relative to "
        f"|(W*_new - A_SR) Sigma^(1/2)|_F^2: {tail / max(scale, 1e-300):.1e})",
    )
