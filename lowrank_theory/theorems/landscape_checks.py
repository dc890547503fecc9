"""Claims about the landscape: the point (A_SR, 0), spurious minima, and the exact Hessian.

Each ``check_*`` function tests one claim on given inputs and returns a
:class:`~lowrank_theory.check_result.CheckResult` (docs/theory.md, sections 6.3, 9 and 14).
The stationary points are certified by :func:`lowrank_theory.stationary.certify_stationary_point`:
gradient, smallest Hessian eigenvalue (modulo the rotation symmetry) and objective.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lowrank_theory import landscape, stationary
from lowrank_theory._validation import as_seed_generator, check_int
from lowrank_theory.lora_ml import lora_ml_gradient, lora_ml_objective
from lowrank_theory.losses import Source
from lowrank_theory.retraining import standard_retraining
from lowrank_theory.tasks import TaskFamily

from .constructions import _check_family, offset_columns_independent
from .result import (
    MARGIN_CAP,
    CheckResult,
    NotApplicable,
    _check_source,
    _source_label,
    make_result,
    margin,
    objective_tolerance,
    relative_gradient_norm,
)
from .retraining_checks import SR_GRAD_RTOL, _base, _covariance_label

__all__ = [
    "check_zero_saddle",
    "check_zero_t1_global",
    "check_zero_is_stationary",
    "check_spurious_minima",
    "check_hessian_exact",
]

#: A point is stationary for these checks when ``||grad F||`` is below this fraction of the
#: gradient scale (the closed-form points here are exact to ~1e-15).
STATIONARY_RTOL = SR_GRAD_RTOL
#: Least negative curvature, relative to ||H||, for a saddle to count as strict; see
#: :data:`lowrank_theory.landscape.CURVATURE_RTOL`.
CURVATURE_RTOL = landscape.CURVATURE_RTOL
#: Agreement of the measured smallest Hessian eigenvalue at ``(A_SR, 0)`` with its closed form
#: ``-4 max_t lambda_max(M_t - mean M)``, relative to ``||H||`` (dense eigh: ~1e-15).
SADDLE_VALUE_RTOL = 1e-9
#: Taylor-remainder slopes (symmetrised, see
#: :func:`lowrank_theory.landscape.taylor_remainder_slopes`): the gradient remainder must scale
#: at least as h^(3 - tol), the Hessian remainder as h^(4 - tol); both are single powers when
#: the derivatives are right. A wrong gradient gives slope 1, a wrong Hessian slope 2.
TAYLOR_SLOPE_TOL = 0.1
#: A Taylor remainder below this many ulps of F (the cancellation error of its four
#: evaluations of F) is round-off, not a remainder, and is left out of the slope.
REMAINDER_ROUNDOFF = 100.0
#: Lanczos and the dense eigensolver must agree on the smallest eigenvalue to this fraction
#: of ||H|| (ARPACK's requested tolerance is 1e-10).
LANCZOS_RTOL = 1e-7

# --------------------------------------------------------------------------- (A_SR, 0) (section 9)
def _offsets_equal(family: TaskFamily) -> bool:
    spread = np.abs(family.offsets - family.offsets.mean(axis=0)).max()
    return bool(spread <= 1e-12 * max(1.0, np.abs(family.offsets).max()))


def _sigma_note(source: Source) -> str:
    return f", {_covariance_label(source)}" if isinstance(source, TaskFamily) else ""


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

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> res = check_zero_saddle(TaskFamily.random(d=4, k=1, T=3, seed=0))
    >>> res.holds, res.measured < 0
    (True, True)
    """
    _check_source(source)
    rank = check_int(rank, "rank", maximum=source.d)
    if enforce_assumptions and (
        source.T < 2 or (isinstance(source, TaskFamily) and _offsets_equal(source))
    ):
        raise NotApplicable("the saddle claim needs T >= 2 and offsets that are not all equal.")
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
        f"{_source_label(source)}, T={source.T}{_sigma_note(source)}: |grad F|/gradient scale={grad_rel:.1e}, "
        f"lambda_min(H)={curv.min_eigenvalue:.4g}, lambda_min(H)/|H|={rel:.3g}{closed}",
    )


def check_zero_t1_global(family: TaskFamily, A: ArrayLike | None = None) -> CheckResult:
    """For T = 1, ``(A_SR, U = 0)`` is a global minimum: ``A_SR = W*_1`` (docs/theory.md 9).

    Parameters
    ----------
    family : TaskFamily with T = 1
    A : array_like of shape (d, d), optional
        The base (default ``A_SR``; a perturbed one is the control).
    """
    family = _check_family(family)
    if family.T != 1:
        raise NotApplicable(f"this is the T = 1 claim, got T={family.T} (see check_zero_saddle).")
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

    Dispatches to :func:`check_zero_t1_global` (a population with T = 1) or
    :func:`check_zero_saddle`; kept for callers of the former single check, which asserted
    only a zero gradient.
    """
    _check_source(source)
    if source.T == 1 and isinstance(source, TaskFamily):
        return check_zero_t1_global(source)
    return check_zero_saddle(source, rank)


# --------------------------------------------------------------------------- spurious minima (section 6)
def check_spurious_minima(family: TaskFamily, A: ArrayLike, U: ArrayLike) -> CheckResult:
    """Certify a spurious local minimum: gradient ~ 0, Hessian positive definite, objective > 0.

    Positive definiteness (modulo the rotation symmetry) with a vanishing gradient is the
    second-order sufficient condition for a strict local minimum; the population global value
    is 0 (attained by the truth), so a positive objective makes it spurious (docs/theory.md 6.3).
    A stationary point with positive loss and a small negative curvature (a near miss, the
    control) is a strict saddle, not a spurious minimum.

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
def check_hessian_exact(
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
    # Remainders below the round-off of F's evaluations carry no slope; when the quartic term
    # along the direction is so small that fewer than three steps rise above it (seen on a
    # d = 2, T = 1 sample), the steps move up by a decade.
    floor = REMAINDER_ROUNDOFF * np.finfo(float).eps * max(1.0, abs(lora_ml_objective(
        source, A, U, V)))
    h, e1, e2 = landscape.taylor_remainder_slopes(source, A, U, V, seed=rng, hvp=hvp)
    for _ in range(2):
        if min(np.sum(e1 > floor), np.sum(e2 > floor)) >= 3:
            break
        h, e1, e2 = landscape.taylor_remainder_slopes(source, A, U, V, seed=rng, hvp=hvp,
                                                      steps=10 * h)
    s1 = landscape.remainder_slope(h[e1 > floor], e1[e1 > floor]) if np.sum(e1 > floor) >= 2 else 0.0
    s2 = landscape.remainder_slope(h[e2 > floor], e2[e2 > floor]) if np.sum(e2 > floor) >= 2 else 0.0
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
