"""Schemes that weigh the new task's fit against the base's behaviour.

Subspace-constrained initialisation, weight interpolation, and post-fine-tuning perturbation
against a harmful task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.typing import NDArray

from lowrank_theory._validation import check_float, check_int
from lowrank_theory.adaptation import PAPER_FT_LR, excess_loss
from lowrank_theory.adapters import AsymmetricAdapter, Factors
from lowrank_theory.losses import Source, Statistics, loss_gradient, statistics
from lowrank_theory.schemes.interface import (
    AdaptationProblem,
    AdaptationScheme,
    Update,
    least_squares_update,
    lora_params,
    reduced_rank_update,
    residual_cross_covariance,
)
from lowrank_theory.tasks import TaskData, TaskFamily

__all__ = [
    "SubspaceInit",
    "WeightInterpolation",
    "PostPerturbation",
    "preserve_subspaces",
    "interpolation_weight",
    "cross_validated_weight",
    "sphere_maximiser",
    "quadratic_change",
]

#: Singular values of the preserved tasks' residuals below this fraction of the largest are
#: round-off: population residuals are exact sums of rank-k terms.
PRESERVE_RTOL = 1e-8
#: Largest Lagrange multiplier tried on the new-task budget before declaring it infeasible.
MULTIPLIER_MAX = 1e12
#: Bisection on the multiplier stops at this relative width.
MULTIPLIER_RTOL = 1e-12
#: Most folds used to choose the interpolation weight (leave-one-out below this many samples):
#: with 20 folds every training part holds 95% of the sample.
MAX_FOLDS = 20


# --------------------------------------------------------------------------- subspace init
def preserve_subspaces(
    preserve: Statistics, A: NDArray[np.float64], rank: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Output and input subspaces of the preserved tasks' residuals at the base.

    Parameters
    ----------
    preserve : Statistics
        Statistics of the preserved tasks, shape (T, d, d).
    A : ndarray of shape (d, d)
        The base.
    rank : int, optional
        Dimension kept; default: the numerical rank (``PRESERVE_RTOL``), which is ``kT`` for
        a population family but ``d`` for a noisy sample (give ``rank`` then).

    Returns
    -------
    Q_out, Q_in : ndarray of shape (d, m)
        Orthonormal bases of the top-m left singular vectors of ``[C_1 ... C_T]`` and of
        ``[C_1^T ... C_T^T]``, with ``C_t = Syx_t - A Sxx_t`` (``W*_t - A`` in the population
        with identity covariance).

    Examples
    --------
    In the population with identity covariance, the residuals at ``A*`` are the offsets, so
    the preserved subspace is the span of the kT offset columns:

    >>> import lowrank_theory as lt
    >>> from lowrank_theory.losses import statistics
    >>> fam = lt.TaskFamily.random(d=6, k=1, T=3, seed=0)
    >>> Q_out, Q_in = preserve_subspaces(statistics(fam), fam.A_star)
    >>> Q_out.shape
    (6, 3)
    >>> U = fam.U_star.transpose(1, 0, 2).reshape(6, 3)
    >>> bool(np.allclose(Q_out @ Q_out.T @ U, U))
    True
    """
    C = residual_cross_covariance(preserve, A)
    bases = []
    for blocks in (C, np.swapaxes(C, 1, 2)):
        U, s, _ = scipy.linalg.svd(np.concatenate(list(blocks), axis=1), full_matrices=False)
        m = int(np.sum(s > PRESERVE_RTOL * max(s[0], 1e-300))) if rank is None else rank
        bases.append(U[:, :m])
    return bases[0], bases[1]


def _descend(stats: Statistics, A: NDArray, factors: Factors, steps: int, lr: float) -> Factors:
    """Gradient descent on the factors of ``U V^T`` with the base held fixed."""
    adapter = AsymmetricAdapter(factors[0].shape[1])
    for _ in range(steps):
        G = loss_gradient(stats, (A + factors[0] @ factors[1].T)[None])[0]
        factors = tuple(f - lr * g for f, g in zip(factors, adapter.factor_gradients(factors, G)))
    return factors


@dataclass(frozen=True)
class SubspaceInit(AdaptationScheme):
    """Rank-r LoRA started in the new task's top subspace, away from a subspace to preserve.

    Parameters
    ----------
    beta : float in [0, 1], default=1
        Strength of the projection away from the preserved subspaces (0: none, 1: full).
    steps : int, default=100
        Gradient steps after the initialisation (0: the initialisation itself).
    lr : float, default=0.005
        Step size.
    preserve_rank : int, optional
        Dimension of the preserved subspaces (:func:`preserve_subspaces`).

    Notes
    -----
    With ``R = Syx - A Sxx`` the new task's residual cross-covariance at the base (``W* - A``
    in the population with identity covariance) and ``Q_out, Q_in`` the preserved tasks'
    residual subspaces (without ``preserve``: empty), the adapter starts at

        U_0 V_0^T = trunc_r[(I - beta Q_out Q_out^T) R (I - beta Q_in Q_in^T)],

    the rank-r truncated SVD split evenly between the factors (``r = budget // (2d)``), then
    takes ``steps`` gradient steps on ``L^(A + U V^T)``. At ``beta = 1`` and zero steps the
    update has ``Q_out^T Delta = 0`` and ``Delta Q_in = 0``; when the ``Q`` span the preserved
    residuals, each preserved task's loss then grows by exactly ``||Delta Sxx_t^{1/2}||_F^2``
    (the cross term ``-2 <Delta, C_t>`` vanishes).
    """

    beta: float = 1.0
    steps: int = 100
    lr: float = PAPER_FT_LR
    preserve_rank: int | None = None
    name: ClassVar[str] = "subspace-init"

    def __post_init__(self) -> None:
        beta = check_float(self.beta, "beta")
        if beta > 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}.")
        check_int(self.steps, "steps", minimum=0)
        check_float(self.lr, "lr", strict=True)
        if self.preserve_rank is not None:
            check_int(self.preserve_rank, "preserve_rank", minimum=0)

    @property
    def label(self) -> str:
        """``subspace-init (beta=..., steps=...)``."""
        return f"{self.name} (beta={self.beta:g}, steps={self.steps})"

    def update(self, problem: AdaptationProblem) -> Update:
        """Projected truncated-SVD start, then ``steps`` gradient steps (see Notes)."""
        rank = problem.max_rank()
        d = problem.d
        R = residual_cross_covariance(problem.stats, problem.base)[0]
        dim = 0
        if problem.preserve is not None:
            Q_out, Q_in = preserve_subspaces(problem.preserve, problem.base, self.preserve_rank)
            dim = Q_out.shape[1]
            R = (R - self.beta * Q_out @ (Q_out.T @ R))
            R = R - self.beta * (R @ Q_in) @ Q_in.T
        factors = AsymmetricAdapter(rank).project(R)
        U, V = _descend(problem.stats, problem.base, factors, self.steps, self.lr)
        info = {"rank": rank, "beta": float(self.beta), "steps": self.steps, "preserve_dim": dim}
        return Update(U @ V.T, lora_params(d, rank), info)


# --------------------------------------------------------------------------- interpolation
def _parabola(stats: Statistics, A: NDArray, delta: NDArray) -> tuple[float, float]:
    """``(slope, curvature)`` with ``L^(A + a Delta) = L^(A) - 2 a slope + a^2 curvature``.

    ``slope = <Delta, Syx - A Sxx>``, ``curvature = <Delta Sxx, Delta>``.
    """
    slope = float(np.sum(delta * residual_cross_covariance(stats, A)[0]))
    return slope, float(np.sum((delta @ stats.Sxx[0]) * delta))


def _clipped_ratio(slope: float, curvature: float) -> float:
    return 0.0 if curvature <= 0.0 else float(np.clip(slope / curvature, 0.0, 1.0))


def interpolation_weight(
    stats: Statistics, A: NDArray[np.float64], delta: NDArray[np.float64]
) -> float:
    """``argmin_{alpha in [0, 1]} L^(A + alpha Delta)``, the loss being a parabola in alpha.

    Notes
    -----
    ``d/dalpha L^(A + alpha Delta) = 2 alpha <Delta Sxx, Delta> - 2 <Delta, Syx - A Sxx>``,
    so the unconstrained minimiser is ``<Delta, Syx - A Sxx> / <Delta Sxx, Delta>``, clipped
    to [0, 1] (0 when ``Delta Sxx Delta^T = 0``).

    Examples
    --------
    Half of the exact update is the step toward the new task's parameter that overshoots it
    by a factor of two, so the best weight is one half:

    >>> import lowrank_theory as lt
    >>> from lowrank_theory.losses import statistics
    >>> fam = lt.TaskFamily.random(d=5, k=1, T=3, seed=1)
    >>> new = fam.new_task(seed=2)
    >>> A = fam.A_star
    >>> delta = 2 * (new.W_star[0] - A)
    >>> round(interpolation_weight(statistics(new), A, delta), 12)
    0.5
    """
    return _clipped_ratio(*_parabola(stats, A, delta))


def cross_validated_weight(
    data: TaskData,
    A: NDArray[np.float64],
    fit: Callable[[Statistics], NDArray[np.float64]],
    folds: int,
) -> float:
    """Interpolation weight chosen on held-out folds: ``argmin_alpha`` of the summed held-out loss.

    Parameters
    ----------
    data : TaskData
        One task's sample (T = 1), split into ``folds`` contiguous blocks (the rows are i.i.d.).
    A : ndarray of shape (d, d)
    fit : callable
        ``fit(stats) -> Delta`` on the statistics of the other blocks.
    folds : int
        ``2 <= folds <= n``; ``n`` is leave-one-out.

    Returns
    -------
    float
        ``clip(sum_f n_f <Delta_f, Syx_f - A Sxx_f> / sum_f n_f <Delta_f Sxx_f, Delta_f>, 0, 1)``
        with ``Delta_f`` fitted without block ``f`` and ``Sxx_f, Syx_f`` the statistics of
        block ``f`` (``n_f`` samples): the minimiser over [0, 1] of
        ``sum_f sum_{i in f} ||y_i - (A + alpha Delta_f) x_i||^2``.
    """
    n = data.n
    slope = curvature = 0.0
    for block in np.array_split(np.arange(n), folds):
        keep = np.ones(n, dtype=bool)
        keep[block] = False
        delta = fit(statistics(TaskData(data.X[:, keep], data.Y[:, keep])))
        s, c = _parabola(statistics(TaskData(data.X[:, block], data.Y[:, block])), A, delta)
        slope += block.size * s
        curvature += block.size * c
    return _clipped_ratio(slope, curvature)


@dataclass(frozen=True)
class WeightInterpolation(AdaptationScheme):
    """``W(alpha) = A + alpha Delta`` with ``alpha`` chosen on held-out samples (WiSE-FT).

    Parameters
    ----------
    inner : {"full", "lora"}, default="full"
        ``"full"``: ``Delta`` is the full-rank least-squares update (``d^2`` parameters, needs
        ``budget >= d^2``); ``"lora"``: the reduced-rank regression of rank ``budget // (2d)``.
    folds : int, optional
        Held-out blocks for choosing ``alpha``; default ``min(n, 20)`` (leave-one-out up to
        20 samples).

    Notes
    -----
    ``alpha*`` minimises the held-out loss of ``A + alpha Delta_f`` summed over the folds,
    ``Delta_f`` being fitted without fold ``f`` (:func:`cross_validated_weight`; for one fold
    it is the 1-D closed form :func:`interpolation_weight`), over ``alpha in [0, 1]``. The
    result is ``A + alpha* Delta`` with ``Delta`` fitted on all ``n`` samples. ``alpha`` is a
    hyperparameter chosen on held-out data, not a trained parameter: the budget counts
    ``Delta``'s parameters only. In the population there is nothing to hold out and
    ``alpha*`` minimises the population loss (it is 1 for an exact fit). A single 75/25 split
    was tried first: at ``n`` near ``d`` its training part is too small for the fitted update
    to say anything about ``alpha``, and it made the loss worse than ``alpha = 1``.
    """

    inner: str = "full"
    folds: int | None = None
    name: ClassVar[str] = "interpolation"

    def __post_init__(self) -> None:
        if self.inner not in ("full", "lora"):
            raise ValueError(f"inner must be 'full' or 'lora', got {self.inner!r}.")
        if self.folds is not None:
            check_int(self.folds, "folds", minimum=2)

    @property
    def label(self) -> str:
        """``interpolation (full)`` or ``interpolation (lora)``."""
        return f"{self.name} ({self.inner})"

    def rank_budget(self, rank: int, d: int) -> int:
        """``d^2`` for the full-rank update whatever the rank, else ``2 d rank``."""
        return d * d if self.inner == "full" else lora_params(d, rank)

    def update(self, problem: AdaptationProblem) -> Update:
        """``alpha* Delta`` with ``alpha*`` from held-out folds (see Notes)."""
        d, A = problem.d, problem.base
        rank = d if self.inner == "full" else problem.max_rank()

        def fit(stats: Statistics) -> NDArray:
            if self.inner == "full":
                return least_squares_update(stats, A)
            return reduced_rank_update(stats, A, rank)[0]

        delta = fit(problem.stats)
        if problem.data is None:
            alpha = interpolation_weight(problem.stats, A, delta)
        else:
            n = problem.data.n
            folds = min(n, MAX_FOLDS) if self.folds is None else self.folds
            if not 2 <= folds <= n:
                raise ValueError(f"folds must be between 2 and n={n}, got {folds}; "
                                 "interpolation needs n >= 2 samples to hold some out.")
            alpha = cross_validated_weight(problem.data, A, fit, folds)
        info = {"rank": rank, "alpha": alpha}
        return Update(alpha * delta, self.rank_budget(rank, d), info)


# --------------------------------------------------------------------------- perturbation
def quadratic_change(
    stats: Statistics, W: NDArray[np.float64], E: NDArray[np.float64]
) -> float:
    """``sum_t L_t(W + E) - L_t(W) = sum_t tr(E Sxx_t E^T) + <G_t, E>``, ``G_t = dL_t/dW``."""
    G = loss_gradient(stats, W[None])
    return float(np.sum((E @ stats.Sxx) * E) + np.sum(G * E))


def sphere_maximiser(
    K: NDArray[np.float64], G: NDArray[np.float64], rho: float
) -> NDArray[np.float64]:
    """Global maximiser of ``tr(E K E^T) + <G, E>`` over ``||E||_F = rho``.

    Parameters
    ----------
    K : ndarray of shape (d, d), symmetric
    G : ndarray of shape (d, d)
    rho : float > 0

    Returns
    -------
    ndarray of shape (d, d)

    Notes
    -----
    The trust-region conditions for a maximum on the sphere: ``E (lambda I - K) = G / 2``
    with ``lambda >= lambda_max(K)``. With ``K = V diag(kappa) V^T`` and ``g_j = (G V)_{:, j} / 2``,
    ``E = sum_j g_j v_j^T / (lambda - kappa_j)`` and ``lambda`` solves
    ``sum_j ||g_j||^2 / (lambda - kappa_j)^2 = rho^2`` (solved for ``1 / sqrt`` of the left
    side, which is nearly linear in ``lambda``). In the hard case (``G`` orthogonal to the top
    eigenvectors and the sum below ``rho^2`` at ``lambda_max``), the missing norm goes along
    the top eigenvector.

    Examples
    --------
    With ``G = 0`` the maximum is ``rho^2 lambda_max(K)``, reached along the top eigenvector:

    >>> K = np.diag([1.0, 3.0, 2.0])
    >>> E = sphere_maximiser(K, np.zeros((3, 3)), rho=2.0)
    >>> round(float(np.linalg.norm(E)), 12), round(float(np.trace(E @ K @ E.T)), 12)
    (2.0, 12.0)
    """
    kappa, V = scipy.linalg.eigh(K)
    g = (G @ V) / 2.0
    w = np.sum(g**2, axis=0)
    top = kappa[-1]

    def excess_inverse_norm(lam: float) -> float:
        # 1 / ||E(lam)||_F - 1 / rho: negative below the root, non-negative above it.
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = float(np.sum(np.where(w > 0, w / (lam - kappa) ** 2, 0.0)))
        inv = np.inf if phi == 0.0 else 1.0 / np.sqrt(phi)
        return inv - 1.0 / rho

    if excess_inverse_norm(top) >= 0.0:
        # Hard case: no root above lambda_max; the missing norm goes along the top eigenvector.
        gap = top - kappa
        E = (g * np.where(gap > 0, 1.0 / np.where(gap > 0, gap, 1.0), 0.0)) @ V.T
        z = np.zeros(K.shape[0])
        z[0] = 1.0
        return E + np.sqrt(max(rho**2 - np.sum(E**2), 0.0)) * np.outer(z, V[:, -1])
    # At hi every term is at most a quarter of its share of rho^2: the root lies below.
    hi = top + 2.0 * np.sqrt(np.sum(w)) / rho
    lam = scipy.optimize.brentq(excess_inverse_norm, top, hi, xtol=1e-15 * max(1.0, abs(hi)))
    return (g / (lam - kappa)) @ V.T


@dataclass(frozen=True, eq=False)
class PostPerturbation(AdaptationScheme):
    """A perturbation of norm ``rho`` added after fine-tuning, to unlearn a harmful task (Panacea).

    Parameters
    ----------
    inner : AdaptationScheme
        The fine-tuning scheme run first (it receives the budget).
    harmful : TaskFamily or TaskData
        The harmful task(s) whose loss the perturbation should raise.
    rho : float > 0, default=1
        Frobenius norm of the perturbation ``E``.
    kind : {"optimised", "random"}, default="optimised"
        ``"random"``: ``E = rho Z / ||Z||_F`` with ``Z`` standard normal. ``"optimised"``: see
        Notes.
    epsilon : float, optional
        Budget on the new task's loss increase (measured on the fine-tuning data); None: no
        budget beyond the norm.

    Notes
    -----
    With ``W`` the fine-tuned weights, the harmful gain ``g(E) = L_h(W + E) - L_h(W)`` and the
    new-task cost ``l(E) = L^(W + E) - L^(W)`` (both :func:`quadratic_change`), the optimised
    perturbation solves

        max g(E)  subject to  ||E||_F = rho,  l(E) <= epsilon,

    through its Lagrangian: ``E_mu = argmax_{||E|| = rho} g(E) - mu l(E)``
    (:func:`sphere_maximiser`), with the multiplier ``mu >= 0`` found by bisection (``l(E_mu)``
    does not increase with ``mu``). In the population with identity covariance both changes
    are ``rho^2`` plus a linear term on the sphere, and the solution is explicit (tested).
    The perturbation is dense and computed after training: the scheme uses the inner
    scheme's parameters. ``info`` reports the harmful gain and the new task's population
    loss increase (``task_loss_lost``).
    """

    inner: AdaptationScheme
    harmful: Source
    rho: float = 1.0
    kind: str = "optimised"
    epsilon: float | None = None
    name: ClassVar[str] = "perturbation"

    def __post_init__(self) -> None:
        if not isinstance(self.inner, AdaptationScheme):
            raise TypeError(f"inner must be an AdaptationScheme, got {type(self.inner).__name__}.")
        if not isinstance(self.harmful, (TaskFamily, TaskData)):
            raise TypeError("harmful must be a TaskFamily or TaskData of the harmful task, got "
                            f"{type(self.harmful).__name__}.")
        check_float(self.rho, "rho", strict=True)
        if self.kind not in ("optimised", "random"):
            raise ValueError(f"kind must be 'optimised' or 'random', got {self.kind!r}.")
        if self.epsilon is not None:
            check_float(self.epsilon, "epsilon", minimum=-np.inf)

    @property
    def label(self) -> str:
        """``perturbation (<kind>, rho=...)``."""
        return f"{self.name} ({self.kind}, rho={self.rho:g})"

    def rank_budget(self, rank: int, d: int) -> int:
        """The inner scheme's."""
        return self.inner.rank_budget(rank, d)

    def min_budget(self, d: int) -> int:
        """The inner scheme's."""
        return self.inner.min_budget(d)

    def update(self, problem: AdaptationProblem) -> Update:
        """The inner update plus the perturbation ``E`` (see Notes)."""
        if self.harmful.d != problem.d:
            raise ValueError(f"harmful must have dimension d={problem.d}, got {self.harmful.d}.")
        delta, params, info = self.inner.update(problem)
        W = problem.base + delta
        harm = statistics(self.harmful)
        mu, feasible = 0.0, True
        if self.kind == "random":
            Z = problem.rng.standard_normal(W.shape)
            E = self.rho * Z / np.linalg.norm(Z)
        else:
            E, mu, feasible = self._optimise(harm, problem.stats, W)
        info = {**info, "rho": float(self.rho), "multiplier": mu, "feasible": float(feasible),
                "harmful_gain": quadratic_change(harm, W, E),
                "task_loss_lost": excess_loss(problem.task, W + E) - excess_loss(problem.task, W)}
        return Update(delta + E, params, info)

    def _optimise(self, harm: Statistics, new: Statistics, W: NDArray) -> tuple[NDArray, float, bool]:
        K_h = np.sum(harm.Sxx, axis=0)
        G_h = np.sum(loss_gradient(harm, W[None]), axis=0)
        G_n = loss_gradient(new, W[None])[0]

        def solve(mu: float) -> NDArray:
            return sphere_maximiser(K_h - mu * new.Sxx[0], G_h - mu * G_n, self.rho)

        E = solve(0.0)
        if self.epsilon is None or quadratic_change(new, W, E) <= self.epsilon:
            return E, 0.0, True
        lo, hi = 0.0, 1.0
        while quadratic_change(new, W, E := solve(hi)) > self.epsilon:
            if hi >= MULTIPLIER_MAX:
                return E, hi, False
            lo, hi = hi, 4.0 * hi
        while hi - lo > MULTIPLIER_RTOL * hi:
            mid = 0.5 * (lo + hi)
            E_mid = solve(mid)
            if quadratic_change(new, W, E_mid) <= self.epsilon:
                hi, E = mid, E_mid
            else:
                lo = mid
        return E, hi, True
