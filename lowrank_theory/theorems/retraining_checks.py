"""Claims about retraining and adaptation: Theorem 1, its corollary, and the fine-tuning rate.

Each ``check_*`` function tests one claim on one instance and returns a
:class:`~lowrank_theory.theorems.result.CheckResult`. The thing under test is an argument whose
default is the library's answer (SR's base, the true base), so a negative control can hand it a
stub -- the truth instead of ``A_SR``, a too-large adapter rank -- and see the check fail.
Section numbers refer to docs/theory.md (sections 4 and 10).
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
    "check_sr_floor_every_n",
    "check_sr_plateau",
    "check_sr_adaptation_rank",
    "check_fine_tuning_rate",
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
#: A spectral tail below this fraction of ``||M||_F^2`` is zero (an exact rank-r residual
#: leaves ~1e-30 relative): the floor must sit above it to be a floor.
FLOOR_ZERO_RTOL = 1e-12
#: From A_SR the excess loss at the largest n must be within this relative distance of the
#: population floor (the estimation part k d sigma^2 / n is ~1e-5 of the floor there).
PLATEAU_RTOL = 0.05
#: The log-log slope of the fine-tuning excess loss in n must be -1 within this tolerance. The
#: reduced-rank regression excess is ~ sigma^2 k (2d - k) / (n - d - 1); the finite-n
#: inflation n / (n - d - 1) steepens the slope by ~0.05 over n = 100..10000 at d = 20, and
#: averaging over seeds leaves ~0.03 standard error.
RATE_SLOPE_TOL = 0.15
#: Band for ``excess * n / (k d sigma^2)``: the reduced-rank regression constant is
#: (2d - k) / d in [1, 2), times the finite-n inflation <= ~1.3; [0.5, 4] allows a factor of 2
#: either side.
RATE_CONSTANT_BAND = (0.5, 4.0)

def _base(source: Source, base: ArrayLike | None, name: str = "base") -> NDArray:
    """The base under test: the given one, or standard retraining's."""
    if base is None:
        return standard_retraining(source)
    return check_array(base, name, (source.d, source.d))


def _isotropic(family: TaskFamily, claim: str) -> TaskFamily:
    family = _check_family(family)
    if not family.isotropic:
        raise ValueError(f"{claim} is stated for identity input covariance; pass Sigma=None.")
    return family


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
    """``rank(A_SR - A*) = min(kT, d)`` for generic offsets (Theorem 1, docs/theory.md 4.2).

    In the population with identity covariance ``A_SR - A* = (1/T) sum_t U*_t U*_t^T``, a
    sum of ``kT`` PSD outer products: its rank is that of ``[U*_1 ... U*_T]``, which is
    ``min(kT, d)`` unless the columns are degenerate (collinear offsets: the negative control).

    Parameters
    ----------
    family : TaskFamily
        Identity input covariance.
    A : array_like of shape (d, d), optional
        The SR base (default: ``standard_retraining(family)``).

    Returns
    -------
    CheckResult
        ``predicted = min(kT, d)``, ``measured`` = numerical rank (threshold
        ``SR_RANK_RTOL``); margin in decades between the singular values and the threshold.
    """
    family = _isotropic(family, "the rank claim")
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
        f"d={family.d}, k={family.k}, T={family.T}: s_min(kT)/s_max={rel[predicted - 1]:.1e} "
        f"(singular values of A_SR - A*)",
    )


def check_sr_floor(
    family: TaskFamily, new_task: TaskFamily, *, base: ArrayLike | None = None,
    rank: int | None = None,
) -> CheckResult:
    """From ``A_SR``, a rank-k adapter cannot reach a new task: the floor (Theorem 1's corollary).

    With ``M = W*_new - A_SR`` (identity covariance) the population excess loss of a rank-k
    asymmetric adapter is ``||M - U V^T||_F^2 >= floor = sum_{i>k} s_i(M)^2`` (Eckart-Young),
    with equality for the truncated SVD. Checked: the floor is positive (``rank M > k``), and
    population fine-tuning of rank ``rank`` (default k) attains it (docs/theory.md 4.3).

    Parameters
    ----------
    family, new_task : TaskFamily
    base : array_like of shape (d, d), optional
        The retrained base (default ``A_SR``); ``A*`` makes the floor vanish (a control).
    rank : int, optional
        Rank of the fine-tuned adapter (default k; ``k + 1`` beats the floor: a control).

    Returns
    -------
    CheckResult
        ``predicted``: the floor; ``measured``: the population fine-tuning loss.
    """
    family = _isotropic(family, "the spectral floor")
    new_task = _check_family(new_task, "new_task")
    k = family.k
    rank = k if rank is None else check_int(rank, "rank", maximum=family.d)
    A = _base(family, base)
    M = new_task.W_star[0] - A
    floor = eckart_young_tail(M, k)
    positive = floor > FLOOR_ZERO_RTOL * float(np.sum(M**2))
    pop = fine_tune(A, new_task, rank=rank, n=None).loss
    error = abs(pop - floor) / max(floor, np.finfo(float).tiny)
    return make_result(
        "sr-floor", "rank-k fine-tuning from A_SR leaves a positive floor: the residual's spectral tail",
        "Thm 1 corollary", floor, pop, error, FLOOR_RTOL, holds=positive and error <= FLOOR_RTOL,
        detail=f"floor={floor:.4g} (sum of squared singular values of W*_new - A_SR beyond k={k}), "
        f"rank-{rank} population loss/floor={pop / max(floor, np.finfo(float).tiny):.6f}",
    )


def check_sr_floor_every_n(
    family: TaskFamily, new_task: TaskFamily, ns: Sequence[int] = (100, 1000, 10_000, 100_000),
    seed: int | np.random.Generator | None = 0, *, base: ArrayLike | None = None,
    rank: int | None = None,
) -> CheckResult:
    """Fine-tuning on ``n`` samples never goes below the rank-k population floor, for every n.

    The floor is the minimum of the population loss over rank-k adapters, so no adapter fitted
    on samples can beat it: an identity (docs/theory.md 4.3), checked with reduced-rank
    regression for each n in ``ns``. ``rank > k`` (a control) does beat it.

    Returns
    -------
    CheckResult
        ``predicted``: the floor; ``measured``: the smallest loss over n; the error is the
        relative deficit below the floor.
    """
    family = _isotropic(family, "the spectral floor")
    new_task = _check_family(new_task, "new_task")
    k = family.k
    rank = k if rank is None else check_int(rank, "rank", maximum=family.d)
    rng = as_seed_generator(seed)
    A = _base(family, base)
    floor = eckart_young_tail(new_task.W_star[0] - A, k)
    losses = [fine_tune(A, new_task, rank=rank, n=int(n), seed=rng).loss for n in ns]
    deficit = max(0.0, (floor - min(losses)) / max(floor, np.finfo(float).tiny))
    ratios = ", ".join(f"n={n}: {loss / max(floor, 1e-300):.4f}" for n, loss in zip(ns, losses))
    return make_result(
        "sr-floor-every-n", "no rank-k adapter fitted on n samples goes below the floor, for any n",
        "Thm 1 corollary", floor, min(losses), deficit, FLOOR_RTOL, kind="consistency",
        detail=f"floor={floor:.4g}; loss/floor {ratios}",
    )


def check_sr_plateau(
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
    family = _isotropic(family, "the plateau")
    new_task = _check_family(new_task, "new_task")
    rng = as_seed_generator(seed)
    A = _base(family, base)
    floor = max(eckart_young_tail(new_task.W_star[0] - A, family.k), np.finfo(float).tiny)
    losses = np.array([fine_tune(A, new_task, rank=family.k, n=int(n), seed=rng).loss for n in ns])
    slope = float(np.polyfit(np.log(np.asarray(ns, float)), np.log(losses), 1)[0])
    ratio = float(losses[-1] / floor)
    return make_result(
        "ft-sr-plateau", "from A_SR the fine-tuning loss plateaus at the floor (no 1/n decay)",
        "Thm 1 corollary", 1.0, ratio, abs(ratio - 1.0), PLATEAU_RTOL,
        detail=f"loss/floor at n={ns[-1]}: {ratio:.4f}; log-log slope of the loss in n={slope:.4f} "
        "(from A*: -1)",
    )


def check_sr_adaptation_rank(
    family: TaskFamily, new_task: TaskFamily, *, base: ArrayLike | None = None
) -> CheckResult:
    """From ``A_SR`` a rank-``k(T+1)`` adapter reaches a new task; rank ``k(T+1) - 1`` does not.

    ``W*_new - A_SR = U*_new U*_new^T - (1/T) sum_t U*_t U*_t^T`` is a combination of
    ``k(T+1)`` outer products, of rank ``k(T+1)`` for generic offsets (``k(T+1) <= d``): the
    Eckart-Young tail is zero at that rank and equals ``s_min^2 > 0`` one rank below (the
    sufficiency half of Theorem 1's corollary, docs/theory.md 4.4).

    Parameters
    ----------
    family, new_task : TaskFamily
        Identity covariance, ``k(T+1) <= d``.
    base : array_like of shape (d, d), optional
        Default ``A_SR``; from ``A*`` rank k already suffices (a control).

    Returns
    -------
    CheckResult
        ``predicted``: 0 (the rank-k(T+1) loss); ``measured``: that loss; the rank-(k(T+1)-1)
        loss must equal its positive spectral tail.
    """
    family = _isotropic(family, "the adaptation-rank claim")
    new_task = _check_family(new_task, "new_task")
    r_full = family.k * (family.T + 1)
    if r_full > family.d:
        raise ValueError(f"the claim needs k(T+1) <= d, got k(T+1)={r_full} > d={family.d}.")
    A = _base(family, base)
    M = new_task.W_star[0] - A
    scale = float(np.sum(M**2))
    full = fine_tune(A, new_task, rank=r_full, n=None).loss
    short = fine_tune(A, new_task, rank=r_full - 1, n=None).loss
    tail = eckart_young_tail(M, r_full - 1)
    tol = objective_tolerance(new_task)
    short_ok = tail > FLOOR_ZERO_RTOL * scale and abs(short - tail) <= FLOOR_RTOL * tail
    return make_result(
        "sr-adapt-rank", "from A_SR rank k(T+1) reaches the new task, rank k(T+1)-1 does not",
        "Thm 1 corollary", 0.0, full, full, tol, holds=full <= tol and short_ok,
        detail=f"k(T+1)={r_full}: loss={full:.1e}; rank {r_full - 1}: loss={short:.4g} "
        f"(spectral tail {tail:.4g}, relative to |W*_new - A_SR|_F^2: {tail / max(scale, 1e-300):.1e})",
    )



# --------------------------------------------------------------------------- rate (section 10)
def check_fine_tuning_rate(
    d: int, k: int, ns: Sequence[int] = (100, 300, 1000, 3000, 10_000), n_seeds: int = 20,
    sigma: float = 0.1, seed: int | np.random.Generator | None = 0, *, base_shift: float = 0.0,
) -> CheckResult:
    """From ``A*``, rank-k fine-tuning on n samples reaches excess loss ~ k d sigma^2 / n.

    Reduced-rank regression (``fine_tune(method="exact")``) from the true base on ``n``
    samples of a fresh task, excess loss averaged over ``n_seeds`` draws. Checked: the
    log-log slope in ``n`` is -1 within ``RATE_SLOPE_TOL``, and ``excess * n / (k d sigma^2)``
    stays in ``RATE_CONSTANT_BAND`` for every n (the parametric rate, with the constant's
    dependence on k and d; docs/theory.md 10).

    Parameters
    ----------
    d, k : int
    ns : sequence of int
    n_seeds : int
    sigma : float
    seed : int, Generator or None
    base_shift : float, default=0.0
        Fine-tune from ``A* + E`` with a random ``E`` of Frobenius norm ``base_shift`` instead
        (a wrong base leaves a floor: the control).

    Returns
    -------
    CheckResult
        ``predicted = -1`` (slope), ``measured`` = fitted slope; the detail lists the constants.
    """
    d = check_int(d, "d")
    k = check_int(k, "k", maximum=d)
    rng = as_seed_generator(seed)
    family = TaskFamily.random(d=d, k=k, T=1, sigma=sigma, seed=rng)
    E = rng.standard_normal((d, d))
    base = family.A_star + base_shift * E / np.linalg.norm(E)
    means = []
    for n in ns:
        vals = [fine_tune(base, family.new_task(seed=rng), rank=k, n=int(n), seed=rng).loss
                for _ in range(n_seeds)]
        means.append(float(np.mean(vals)))
    means = np.asarray(means)
    nn = np.asarray(ns, dtype=float)
    slope = float(np.polyfit(np.log(nn), np.log(means), 1)[0])
    consts = means * nn / (k * d * sigma**2)
    lo, hi = RATE_CONSTANT_BAND
    in_band = bool(np.all((consts >= lo) & (consts <= hi)))
    return make_result(
        "ft-rate", "from A*, rank-k fine-tuning excess loss ~ k d sigma^2 / n (slope -1 in n)",
        "rate", -1.0, slope, abs(slope + 1.0), RATE_SLOPE_TOL,
        holds=abs(slope + 1.0) <= RATE_SLOPE_TOL and in_band,
        detail=f"d={d}, k={k}: slope {slope:.3f}, excess*n/(k d sigma^2) in "
        f"[{consts.min():.2f}, {consts.max():.2f}] (reduced-rank regression: (2d-k)/d="
        f"{(2 * d - k) / d:.2f})",
    )


