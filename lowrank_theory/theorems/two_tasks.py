"""Claims about two tasks (Theorem 4): the hyperbolic family, strict saddles, rank 3k, the protocol.

With T = 2 the global minima form a family of dimension k^2 (docs/theory.md, section 7):
:func:`~lowrank_theory.theorems.constructions.hyperbolic_member` parametrises it by a k x k
boost ``S``, and :func:`~lowrank_theory.theorems.constructions.hyperbolic_parameter` reads the
member a base is. Each ``check_*`` function tests one claim on given inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from lowrank_theory import stationary
from lowrank_theory._validation import check_array, check_int
from lowrank_theory.adaptation import fine_tune
from lowrank_theory.lora_ml import lora_ml_objective
from lowrank_theory.metrics import eckart_young_tail, numerical_rank
from lowrank_theory.tasks import TaskFamily

from .constructions import (
    INDEPENDENCE_RTOL,
    _check_family,
    global_minima_from_random_starts,
    hyperbolic_minimum,
    hyperbolic_parameter,
)
from .global_minima import COUNTEREXAMPLE_MIN_RSHIFT
from .landscape_checks import CURVATURE_RTOL
from .result import (
    MARGIN_CAP,
    CheckResult,
    NotApplicable,
    make_result,
    margin,
    objective_tolerance,
    problem_scale,
)
from .retraining_checks import (
    FLOOR_RTOL,
    FLOOR_ZERO_RTOL,
    _covariance_label,
    _shared_covariance,
)

__all__ = [
    "check_t2_hyperbolic",
    "check_t2_strict_saddle",
    "check_t2_gradient_global",
    "check_t2_rank_3k",
    "check_t2_paper_protocol",
]

#: Non-global stationary points a strict-saddle check must examine on each instance, so that
#: it cannot pass by finding none (``(A_SR, 0)`` and the ``U_s = 0`` faces give ``T + 1``).
MIN_NONGLOBAL_STATIONARY = 2
#: Misfit ``|A - A(S)|_F / scale`` below which a base is a member of the T = 2 family: the
#: family's members are exact to round-off (~1e-15) and polished end points to ~1e-13.
MEMBER_RTOL = 1e-9
#: Singular values of ``A^ - A*`` below this fraction of the largest count as zero when
#: deciding whether a minimum moved the base in all 2k directions.
SHIFT_RANK_RTOL = 1e-9


def _two_tasks(family: TaskFamily, claim: str) -> TaskFamily:
    family = _check_family(family)
    if family.T != 2:
        raise NotApplicable(f"{claim} is the T = 2 claim, got T={family.T}.")
    return family


def _identity(family: TaskFamily, claim: str) -> None:
    if not family.isotropic:
        raise NotApplicable(f"{claim} is stated and proved for identity input covariance "
                            "(docs/theory.md, section 7.2); pass Sigma=None.")


def check_t2_hyperbolic(
    family: TaskFamily, s: float | ArrayLike, *, point: tuple[ArrayLike, ArrayLike] | None = None
) -> CheckResult:
    """T = 2: the hyperbolic rotation gives a zero-loss minimum with ``A^ != A*``, rank <= 2k.

    An identity of the construction (docs/theory.md 7.1), for any SPD input covariance: the
    point has ``A^ + V_t V_t^T = W*_t`` for both tasks.

    Parameters
    ----------
    family : TaskFamily with T = 2
    s : float or array_like of shape (k,)
        Rapidities (nonzero: ``s = 0`` is the truth itself).
    point : (A, U), optional
        The point to certify instead of ``hyperbolic_minimum(family, s)``; the control hands
        it the hyperbolic point with ``V_1`` scaled by 1.001, moved off zero loss.

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> check_t2_hyperbolic(TaskFamily.random(d=4, k=1, T=2, seed=0), 0.5).holds
    True
    """
    family = _two_tasks(family, "the hyperbolic family")
    A_hat, U_hat = hyperbolic_minimum(family, s) if point is None else point
    A_hat = check_array(A_hat, "A_hat", (family.d, family.d))
    value = lora_ml_objective(family, A_hat, U_hat)
    diff = A_hat - family.A_star
    shift = float(np.linalg.norm(diff)) / problem_scale(family)
    rank = numerical_rank(diff, rtol=1e-9) if np.any(diff) else 0
    tol = objective_tolerance(family)
    ok = value <= tol and rank <= 2 * family.k and shift >= COUNTEREXAMPLE_MIN_RSHIFT
    return make_result(
        "t2-hyperbolic", "T = 2: hyperbolic rotations give zero-loss minima with A^ != A*",
        "Thm 4", 0.0, value, value, tol, kind="consistency", holds=ok,
        detail=f"{_covariance_label(family)}, rapidities s={np.round(np.atleast_1d(s), 4).tolist()}: "
        f"F={value:.1e}, |A^-A*|_F/scale={shift:.3f}, rank(A^-A*)={rank}",
    )


def check_t2_strict_saddle(
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
    family : TaskFamily with T = 2 and identity covariance (unless ``enforce_assumptions=False``)
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
    if enforce_assumptions:
        _two_tasks(family, "the strict-saddle claim")
        _identity(family, "the strict-saddle claim")
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


def check_t2_gradient_global(
    family: TaskFamily, rank: int | None = None, n_starts: int = 5,
    seed: int | np.random.Generator | None = 0, *, enforce_assumptions: bool = True,
) -> CheckResult:
    """T = 2: gradient methods from random starts reach a global minimum (strict saddle consequence).

    With T >= 3 spurious minima can stop them (the control, docs/theory.md 7.2 and 6.3).
    """
    family = _check_family(family)
    if enforce_assumptions:
        _two_tasks(family, "the claim that random starts reach zero loss")
        _identity(family, "the claim that random starts reach zero loss")
    rank = family.k if rank is None else check_int(rank, "rank", maximum=family.d)
    n_starts = check_int(n_starts, "n_starts")
    minima, other = global_minima_from_random_starts(family, rank, n_starts, seed)
    frac_fail = other / n_starts
    return make_result(
        "t2-gradient-global", "T = 2: L-BFGS from random starts reaches a global minimum",
        "Thm 4", 0.0, frac_fail, frac_fail, 0.0, holds=other == 0,
        detail=f"T={family.T}: {len(minima)}/{n_starts} starts reached zero loss",
    )


def _generic_residual(family: TaskFamily, A_hat: np.ndarray, new_task: TaskFamily) -> None:
    """Refuse the degenerate instances on which rank 3k - 1 can also reach the new task."""
    k = family.k
    cols = np.concatenate([*family.U_star, new_task.U_star[0]], axis=1)
    if numerical_rank(cols, rtol=INDEPENDENCE_RTOL) < 3 * k:
        raise NotApplicable("rank 3k is needed only when the new task's offset columns are "
                            "independent of both retraining tasks' (the columns of "
                            "[U*_1 U*_2 U*_new] are dependent here)")
    diff = A_hat - family.A_star
    moved = numerical_rank(diff, rtol=SHIFT_RANK_RTOL) if np.any(diff) else 0
    if moved < 2 * k:
        raise NotApplicable("rank 3k is needed only from a minimum with rank(A^ - A*) = 2k "
                            "(every rapidity nonzero); this one moved the base in fewer directions")


def check_t2_rank_3k(
    family: TaskFamily, A_hat: ArrayLike, new_task: TaskFamily, *, rank: int | None = None,
) -> CheckResult:
    """T = 2: from a global minimum rank 3k reaches the new task; rank 3k - 1 does not.

    At a zero-loss point ``A* - A^ = V_1 V_1^T - U*_1 U*_1^T`` lies in ``span(U*_1, U*_2)``
    with rank at most 2k, so ``W*_new - A^ = (A* - A^) + U*_new U*_new^T`` has rank at most 3k:
    a rank-3k adapter reaches the new task (any SPD covariance, as ``rank(M Sigma^{1/2}) =
    rank(M)``). The rank is exactly 3k -- so rank ``3k - 1`` leaves the positive tail
    ``tail_(3k-1)`` -- when ``rank(A^ - A*) = 2k`` and the columns of
    ``[U*_1 U*_2 U*_new]`` are independent (docs/theory.md 7.3); outside these generic
    conditions the check does not apply.

    Parameters
    ----------
    family : TaskFamily with T = 2, ``3k <= d``, one shared covariance
    A_hat : array_like of shape (d, d)
        The base of a global minimum.
    new_task : TaskFamily with T = 1
    rank : int, optional
        The rank claimed to suffice (default 3k; the control claims 3k - 1).

    Returns
    -------
    CheckResult
        ``measured``: the population loss at ``rank``; the loss one rank below must equal its
        positive spectral tail.
    """
    family = _two_tasks(family, "the rank-3k claim")
    new_task = _check_family(new_task, "new_task")
    Sigma = _shared_covariance(family)
    A_hat = check_array(A_hat, "A_hat", (family.d, family.d))
    k = family.k
    r = 3 * k if rank is None else check_int(rank, "rank", maximum=family.d)
    if 3 * k > family.d:
        raise NotApplicable(f"the claim needs 3k <= d, got 3k={3 * k} > d={family.d}")
    if lora_ml_objective(family, A_hat, _factors_for(family, A_hat)) > objective_tolerance(family):
        raise ValueError("A_hat is not the base of a global minimum (W*_t - A_hat is not PSD of "
                         "rank <= k for both tasks).")
    _generic_residual(family, A_hat, new_task)
    M = new_task.W_star[0] - A_hat
    loss = fine_tune(A_hat, new_task, rank=r, n=None).loss
    short = fine_tune(A_hat, new_task, rank=r - 1, n=None).loss
    tail = eckart_young_tail(M, r - 1, Sigma)
    tol = objective_tolerance(new_task)
    short_ok = (tail > FLOOR_ZERO_RTOL * eckart_young_tail(M, 0, Sigma)
                and abs(short - tail) <= FLOOR_RTOL * tail)
    return make_result(
        "t2-rank-3k", "T = 2: rank 3k reaches the new task from a global minimum, rank 3k-1 does not",
        "Thm 4", 0.0, loss, loss, tol, kind="consistency", holds=loss <= tol and short_ok,
        detail=f"{_covariance_label(family)}: rank-{r} loss={loss:.1e}, rank-{r - 1} loss="
        f"{short:.3g} (spectral tail {tail:.3g})",
    )


def _factors_for(family: TaskFamily, A_hat: np.ndarray) -> np.ndarray:
    """The best symmetric rank-k factors of ``W*_t - A_hat`` (exact at a zero-loss base)."""
    out = []
    for W in family.W_star:
        R = W - A_hat
        lam, vec = np.linalg.eigh((R + R.T) / 2.0)
        top = vec[:, ::-1][:, : family.k] * np.sqrt(np.clip(lam[::-1][: family.k], 0.0, None))
        out.append(top)
    return np.stack(out)


def check_t2_paper_protocol(
    family: TaskFamily, A: ArrayLike, U: ArrayLike, new_task: TaskFamily
) -> CheckResult:
    """T = 2: the paper's gradient descent ends at a member of the minimiser family.

    ``(A, U)`` is where the authors' protocol (``fit_lora_ml(method="paper")``) converged, its
    last iterate Newton-polished. Checked: it is a global minimum; its base is the member
    ``A(S)`` of the k^2-dimensional family that
    :func:`~lowrank_theory.theorems.constructions.hyperbolic_parameter` reads off (misfit below
    ``MEMBER_RTOL``), which says *which* member (the rapidities ``asinh`` of the singular values
    of ``S``); and a rank-3k adapter reaches the new task from it (docs/theory.md 7.4).

    Parameters
    ----------
    family : TaskFamily with T = 2, identity covariance, ``3k <= d``
    A, U : array_like
        The converged point.
    new_task : TaskFamily with T = 1

    Returns
    -------
    CheckResult
        ``measured``: the misfit ``|A - A(S)|_F / scale``; the detail gives the rapidities and
        ``|A - A*|_F / scale``.
    """
    family = _two_tasks(family, "the paper protocol's T = 2 claim")
    _identity(family, "the paper protocol's T = 2 claim (its step sizes are the paper's)")
    new_task = _check_family(new_task, "new_task")
    if 3 * family.k > family.d:
        raise NotApplicable(f"the claim needs 3k <= d, got 3k={3 * family.k} > d={family.d}")
    A = check_array(A, "A", (family.d, family.d))
    value = lora_ml_objective(family, A, U)
    tol = objective_tolerance(family)
    S, misfit = hyperbolic_parameter(family, A)
    rapidities = np.arcsinh(np.linalg.svd(S, compute_uv=False))
    loss3 = fine_tune(A, new_task, rank=3 * family.k, n=None).loss
    reaches = loss3 <= objective_tolerance(new_task)
    shift = float(np.linalg.norm(A - family.A_star)) / problem_scale(family)
    return make_result(
        "t2-paper-protocol", "T = 2: the paper's gradient descent converges to a member A(S) of "
        "the minimiser family, from which rank 3k reaches the new task", "Thm 4 (protocol)",
        0.0, misfit, misfit, MEMBER_RTOL, holds=value <= tol and misfit <= MEMBER_RTOL and reaches,
        detail=f"d={family.d}, k={family.k}: F={value:.1e}, misfit to A(S)={misfit:.1e}, "
        f"rapidities asinh(sv(S))={np.round(rapidities, 4).tolist()}, |A^-A*|_F/scale="
        f"{shift:.3g}, rank-3k loss={loss3:.1e}",
    )
