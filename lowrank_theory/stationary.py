"""Stationary points of the LoRA-ML objective: Newton polishing, certificates and search.

A stationary point is certified by its gradient (relative to the problem's scale,
:func:`problem_scales`) and classified by the smallest eigenvalue of the exact Hessian
(:mod:`lowrank_theory.landscape`): negative curvature makes it a strict saddle, a positive
semi-definite Hessian at a value above the global one a spurious local minimum
(docs/theory.md, sections 6.3, 7.2 and 9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse.linalg
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._validation import as_seed_generator, check_float, check_int
from lowrank_theory.adapters import Factors, SymmetricAdapter
from lowrank_theory.landscape import (
    CURVATURE_RTOL,
    _dense_hessian,
    _grad_vector,
    _hvp,
    _pack_blocks,
    _unpack_point,
    hessian_min_eigenvalue,
)
from lowrank_theory.losses import Source, Statistics, loss_gradient, statistics
from lowrank_theory.objective import (
    check_point,
    full_gradient_norm,
    lora_ml_objective,
    pack,
)
from lowrank_theory.tasks import TaskData, TaskFamily

__all__ = [
    "StationaryPointCertificate",
    "polish_stationary_point",
    "certify_stationary_point",
    "find_stationary_points",
    "problem_scales",
    "GRAD_RTOL",
    "VALUE_RTOL",
]

#: A point is stationary when ``||grad F|| <= GRAD_RTOL * gradient_scale``. Newton polishing
#: reaches ~1e-13 relative; L-BFGS alone stalls near 1e-8, so 1e-7 separates "converged" from
#: "still moving" with room on both sides.
GRAD_RTOL = 1e-7
#: An objective within ``VALUE_RTOL * value_scale`` of the global value counts as global: the
#: excess loss is a sum of squares, so a residual of relative size 1e-5 gives 1e-10.
VALUE_RTOL = 1e-9
#: Halvings of a Newton (or gradient-norm descent) step tried by the polisher before giving up.
POLISH_BACKTRACKS = 30


# --------------------------------------------------------------------------- stationary points
def problem_scales(stats: Statistics) -> tuple[float, float]:
    """Gradient and objective scales of a problem, the units of the relative tolerances.

    Parameters
    ----------
    stats : Statistics

    Returns
    -------
    gradient_scale : float
        ``max(1, ||(G_t(0))_t||_F)``: the per-task loss gradients at the zero model, stacked
        (stacked, not summed, so tasks that cancel do not shrink the scale).
    value_scale : float
        ``max(1, sum_t syy_t)``: the summed loss of the zero model.
    """
    G0 = loss_gradient(stats, np.zeros_like(stats.Sxx))
    grad_scale = max(1.0, float(np.linalg.norm(G0)))
    value_scale = max(1.0, float(np.sum(stats.syy)))
    return grad_scale, value_scale




def polish_stationary_point(
    source: Source,
    A: ArrayLike,
    U: ArrayLike,
    V: ArrayLike | None = None,
    *,
    max_iter: int = 30,
) -> tuple[NDArray[np.float64], Factors, float]:
    """Refine a near-stationary point with Newton steps on the exact Hessian.

    Newton's method converges quadratically to the stationary point nearest its start,
    whatever its kind (minimum or saddle), so it turns an L-BFGS answer (gradient ~1e-8) into
    one certified to round-off. Singular directions (symmetries, flat families of minima) are
    handled by a least-squares (minimum-norm) step; each step backtracks until the gradient
    norm decreases, falling back on a descent step for ``||grad F||^2`` when Newton's fails.

    Parameters
    ----------
    source : TaskFamily or TaskData
    A : array_like of shape (d, d)
    U : array_like of shape (T, d, r)
    V : array_like of shape (T, d, r), optional
    max_iter : int, default=30
        Newton steps at most (stops earlier when the gradient stops shrinking).

    Returns
    -------
    A : ndarray of shape (d, d)
    factors : tuple of ndarray of shape (T, d, r)
    grad_norm : float
        Final gradient norm.
    """
    A, factors, adapter = check_point(source, A, U, V)
    max_iter = check_int(max_iter, "max_iter", minimum=0)
    stats = statistics(source)
    shape, n_f = factors[0].shape, len(factors)
    x = pack(A, factors)
    g = _grad_vector(source, A, factors)
    gnorm = float(np.linalg.norm(g))
    for _ in range(max_iter):
        if gnorm == 0.0:
            break
        H = _dense_hessian(stats, adapter, *_unpack_point(x, shape, n_f))
        newton, *_ = scipy.linalg.lstsq(H, -g, cond=1e-12)
        # Two candidate directions, each with backtracking on ||grad||: the Newton step, and
        # the steepest-descent step of ||grad F||^2 / 2 (direction -H g), which still makes
        # progress where a nearly singular Hessian sends the Newton step too far.
        accepted = False
        for direction in (newton, -(H @ g)):
            step = 1.0
            if direction is not newton:
                # Exact line minimiser of the quadratic model ||g + t H d||^2 as a first guess.
                Hd = H @ direction
                step = -float(g @ Hd) / max(float(Hd @ Hd), np.finfo(float).tiny)
            for _ in range(POLISH_BACKTRACKS):
                x_new = x + step * direction
                g_new = _grad_vector(source, *_unpack_point(x_new, shape, n_f))
                n_new = float(np.linalg.norm(g_new))
                if n_new < gnorm:
                    x, g, gnorm, accepted = x_new, g_new, n_new, True
                    break
                step *= 0.5
            if accepted:
                break
        if not accepted:
            break
    A, factors = _unpack_point(x, shape, n_f)
    return A, factors, gnorm


@dataclass(frozen=True, eq=False)
class StationaryPointCertificate:
    """What a point of the LoRA-ML landscape is, with the numbers that show it.

    Attributes
    ----------
    kind : str
        ``"not stationary"``, ``"global minimum"``, ``"strict saddle"``,
        ``"spurious local minimum"`` (gradient ~ 0, Hessian positive definite modulo symmetry,
        objective above the global value), ``"local minimum"`` (same, global value unknown)
        or ``"degenerate"`` (second-order stationary but neither certified).
    objective : float
        Objective at the point.
    global_value : float or None
        The global minimum value it is compared with (0 for a population).
    excess : float or None
        ``objective - global_value``.
    grad_norm : float
        ``||grad F||``.
    grad_tolerance : float
        ``GRAD_RTOL * gradient_scale``.
    min_eigenvalue : float
        Smallest Hessian eigenvalue (all directions).
    min_eigenvalue_modulo_symmetry : float
        Smallest eigenvalue off the symmetry directions.
    hessian_norm : float
        ``||H||_2``.
    curvature_tolerance : float
        ``CURVATURE_RTOL * ||H||_2``.
    value_tolerance : float
        ``VALUE_RTOL * value_scale``.
    """

    kind: str
    objective: float
    global_value: float | None
    excess: float | None
    grad_norm: float
    grad_tolerance: float
    min_eigenvalue: float
    min_eigenvalue_modulo_symmetry: float
    hessian_norm: float
    curvature_tolerance: float
    value_tolerance: float

    @property
    def stationary(self) -> bool:
        """Whether the gradient is below its tolerance."""
        return self.grad_norm <= self.grad_tolerance


def certify_stationary_point(
    source: Source,
    A: ArrayLike,
    U: ArrayLike,
    V: ArrayLike | None = None,
    *,
    global_value: float | None = None,
) -> StationaryPointCertificate:
    """Classify a point from its gradient, its Hessian spectrum and its objective.

    Parameters
    ----------
    source : TaskFamily or TaskData
    A : array_like of shape (d, d)
    U : array_like of shape (T, d, r)
    V : array_like of shape (T, d, r), optional
    global_value : float, optional
        The global minimum value. Default: 0 for a population (the excess loss is a sum of
        squares and the ground truth attains 0), unknown for a sample.

    Returns
    -------
    StationaryPointCertificate

    Notes
    -----
    Rules, in order: gradient above ``GRAD_RTOL`` times its scale: not stationary; objective
    within ``VALUE_RTOL`` of the global value: global minimum; smallest eigenvalue below
    ``-CURVATURE_RTOL ||H||``: strict saddle (a descent direction of negative curvature
    exists); smallest eigenvalue modulo symmetry above ``+CURVATURE_RTOL ||H||``: strict local
    minimum (second-order sufficient condition on the quotient by the symmetry); otherwise
    degenerate. A strict local minimum with a positive excess is a spurious local minimum.
    """
    A, factors, adapter = check_point(source, A, U, V)
    stats = statistics(source)
    grad_scale, value_scale = problem_scales(stats)
    if global_value is None and isinstance(source, TaskFamily):
        global_value = 0.0
    if global_value is not None:
        global_value = check_float(global_value, "global_value", minimum=-np.inf)
    objective = lora_ml_objective(source, A, *factors)
    gnorm = full_gradient_norm(stats, adapter, A, factors)
    full = hessian_min_eigenvalue(source, A, *factors, method="dense")
    quotient = hessian_min_eigenvalue(source, A, *factors, method="dense", modulo_symmetry=True)
    grad_tol = GRAD_RTOL * grad_scale
    curv_tol = CURVATURE_RTOL * max(full.norm, np.finfo(float).tiny)
    value_tol = VALUE_RTOL * value_scale
    excess = None if global_value is None else objective - global_value
    if gnorm > grad_tol:
        kind = "not stationary"
    elif excess is not None and excess <= value_tol:
        kind = "global minimum"
    elif full.min_eigenvalue < -curv_tol:
        kind = "strict saddle"
    elif quotient.min_eigenvalue > curv_tol:
        kind = "local minimum" if excess is None else "spurious local minimum"
    else:
        kind = "degenerate"
    return StationaryPointCertificate(
        kind, objective, global_value, excess, gnorm, grad_tol, full.min_eigenvalue,
        quotient.min_eigenvalue, full.norm, curv_tol, value_tol,
    )


def find_stationary_points(
    source: Source,
    rank: int,
    n_starts: int = 10,
    seed: int | np.random.Generator | None = 0,
    *,
    init_scale: float = 1.0,
    max_iter: int = 300,
) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Stationary points of the symmetric LoRA-ML objective, saddles included.

    Gradient methods avoid saddles, so they cannot list them. Instead this minimises the
    squared gradient norm ``phi(x) = ||grad F(x)||^2 / 2`` (whose gradient is the
    Hessian-vector product ``H grad F``) by L-BFGS from random starts, then polishes with
    Newton (:func:`polish_stationary_point`). Every zero of ``grad F`` is a global minimum of
    ``phi``; points where ``phi`` stalls above zero are dropped.

    Parameters
    ----------
    source : TaskFamily or TaskData
    rank : int
        Adapter rank.
    n_starts : int, default=10
        Random starts (``A``, ``U`` with i.i.d. ``N(0, init_scale^2)`` entries).
    seed : int, Generator or None, default=0
    init_scale : float, default=1.0
    max_iter : int, default=300
        L-BFGS iterations per start (Newton finishes from there; a start that has not come
        near a stationary point by then is dropped).

    Returns
    -------
    list of (A, U)
        Points whose gradient norm is below ``GRAD_RTOL`` times the gradient scale
        (duplicates not removed).
    """
    if not isinstance(source, (TaskFamily, TaskData)):
        raise TypeError(f"source must be a TaskFamily or TaskData, got {type(source).__name__}.")
    rank = check_int(rank, "rank", maximum=source.d)
    n_starts = check_int(n_starts, "n_starts", minimum=0)
    init_scale = check_float(init_scale, "init_scale", strict=True)
    rng = as_seed_generator(seed)
    stats = statistics(source)
    grad_scale, _ = problem_scales(stats)
    T, d = source.T, source.d
    shape = (T, d, rank)
    adapter = SymmetricAdapter(rank)
    found = []
    for _ in range(n_starts):
        x0 = init_scale * rng.standard_normal(d * d + T * d * rank)

        def phi(x: NDArray) -> tuple[float, NDArray]:
            A_, fac = _unpack_point(x, shape, 1)
            W = A_ + adapter.delta(fac)
            G = loss_gradient(stats, W)
            gA, gU = G.sum(axis=0), adapter.factor_gradients(fac, G)[0]
            g = pack(gA, (gU,))
            Hg = _pack_blocks(_hvp(stats, adapter, A_, fac, gA, (gU,)))
            return 0.5 * float(g @ g), Hg

        res = scipy.optimize.minimize(
            phi, x0, jac=True, method="L-BFGS-B",
            options={"maxiter": max_iter, "ftol": 0.0, "gtol": 1e-14},
        )
        A, fac = _unpack_point(res.x, shape, 1)
        A, fac, gnorm = polish_stationary_point(source, A, fac[0])
        if gnorm <= GRAD_RTOL * grad_scale:
            found.append((A, fac[0]))
    return found
