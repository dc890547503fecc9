"""Schemes that fit low-rank updates: fixed rank, adaptive rank, mixture of retrained adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._validation import check_array, check_float, check_int
from lowrank_theory.adaptation import (
    FINE_TUNE_METHODS,
    PAPER_FT_INIT_SCALE,
    PAPER_FT_LR,
    fine_tune,
)
from lowrank_theory.covariance import covariance_sqrt
from lowrank_theory.losses import Statistics, task_losses
from lowrank_theory.schemes.interface import (
    AdaptationProblem,
    AdaptationScheme,
    Update,
    least_squares_update,
    lora_params,
    reduced_rank_update,
    residual_cross_covariance,
)

__all__ = ["FixedRankLoRA", "FullFineTune", "AdaptiveRankLoRA", "MixtureOfAdapters", "mixture_weights", "noise_variance"]

#: Population salience below this fraction of the largest is round-off: the population update
#: ``W* - A`` has exact zeros beyond its rank.
POPULATION_SALIENCE_RTOL = 1e-12
#: BFGS on the mixture weights stops when the gradient norm is below this fraction of the
#: loss scale ``||Sxx^{1/2} B_0||_F^2`` (the gradient is a sum of such terms).
MIXTURE_GTOL = 1e-10
#: Largest number of BFGS iterations on the mixture weights.
MIXTURE_MAX_ITER = 500


@dataclass(frozen=True)
class FixedRankLoRA(AdaptationScheme):
    """Rank-r asymmetric LoRA ``Delta = U V^T`` with ``r = budget // (2d)``: :func:`fine_tune`.

    Parameters
    ----------
    method : {"exact", "gd"}, default="exact"
        ``"exact"``: reduced-rank regression, ``Delta = argmin_{rank(Delta) <= r} L^(A + Delta)``
        (population: the Eckart-Young truncation of ``(W* - A) Sigma^{1/2}``). ``"gd"``: the
        paper's gradient descent on the factors from a random start.
    steps, lr, init_scale
        Gradient-descent schedule (``method="gd"``).

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=6, k=1, T=3, seed=0)
    >>> res = FixedRankLoRA().adapt(fam.A_star, fam.new_task(seed=1), budget=12)
    >>> res.params, res.loss < 1e-20
    (12, True)
    """

    method: str = "exact"
    steps: int = 1000
    lr: float = PAPER_FT_LR
    init_scale: float = PAPER_FT_INIT_SCALE
    name: ClassVar[str] = "lora"

    def __post_init__(self) -> None:
        if self.method not in FINE_TUNE_METHODS:
            raise ValueError(f"method must be one of {FINE_TUNE_METHODS}, got {self.method!r}.")
        check_int(self.steps, "steps", minimum=0)
        check_float(self.lr, "lr", strict=True)
        check_float(self.init_scale, "init_scale", strict=True)

    @property
    def label(self) -> str:
        """``lora-exact`` or ``lora-gd``."""
        return f"lora-{self.method}"

    def update(self, problem: AdaptationProblem) -> Update:
        """``Delta = U V^T``, the rank-r fit of :func:`lowrank_theory.fine_tune`."""
        rank = problem.max_rank()
        ft = fine_tune(
            problem.base, problem.task, rank=rank, n=problem.n, seed=problem.seed,
            adapter="asymmetric", method=self.method, steps=self.steps, lr=self.lr,
            init_scale=self.init_scale,
        )
        return Update(ft.delta, lora_params(problem.d, rank), {"rank": rank})


@dataclass(frozen=True)
class FullFineTune(AdaptationScheme):
    """Dense fine-tuning: the full-rank least-squares update, ``d^2`` parameters.

    Notes
    -----
    ``Delta = argmin_Delta L^(A + Delta) = (Sxx^+ (Sxy - Sxx A^T))^T``
    (:func:`~lowrank_theory.schemes.interface.least_squares_update`; the population gives
    ``W* - A``). The baseline of weight interpolation; it needs ``budget >= d^2``.
    """

    name: ClassVar[str] = "full"

    def rank_budget(self, rank: int, d: int) -> int:
        """``d^2`` whatever the rank."""
        return d * d

    def update(self, problem: AdaptationProblem) -> Update:
        """The least-squares update."""
        d = problem.d
        return Update(least_squares_update(problem.stats, problem.base), d * d, {"rank": d})


def noise_variance(stats: Statistics, A: NDArray[np.float64], n: int) -> float:
    """Unbiased noise variance per output coordinate from the full least-squares residual.

    ``sigma^2 = n L^(A + Delta_LS) / (d (n - d))``: the residual sum of squares has
    ``d (n - d)`` degrees of freedom.

    Raises
    ------
    ValueError
        If ``n <= d`` (no residual degrees of freedom).
    """
    d = stats.d
    if n <= d:
        raise ValueError(
            f"estimating the noise needs n > d={d} samples, got n={n}; pass noise_var."
        )
    W = A + least_squares_update(stats, A)
    return float(task_losses(stats, W[None])[0]) * n / (d * (n - d))


@dataclass(frozen=True)
class AdaptiveRankLoRA(AdaptationScheme):
    """Rank chosen by the salience of the least-squares update, pruned to the budget.

    Parameters
    ----------
    noise_var : float, optional
        Noise variance per output coordinate; estimated from the residual when None
        (:func:`noise_variance`, needs ``n > d``).

    Notes
    -----
    Let ``lambda_1 >= ... >= lambda_d`` be the salience of the directions of the full
    least-squares update (:func:`reduced_rank_update`: keeping direction i lowers the
    empirical loss by ``lambda_i``). The rank minimises a Mallows-type estimate of the
    prediction risk over the ranks the budget pays for,

        r* = argmin_{0 <= r <= budget // (2d)}  - sum_{i <= r} lambda_i + 2 sigma^2 r (2d - r) / n,

    where ``r (2d - r)`` is the dimension of the rank-r matrices (the degrees of freedom of
    reduced-rank regression), and ``Delta`` is the reduced-rank regression of rank ``r*``. In
    the population the penalty is zero and ``r*`` keeps every direction of non-zero salience
    within the budget. The scheme uses ``2 d r*`` parameters, possibly fewer than the budget.

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=6, k=1, T=3, seed=0)
    >>> res = AdaptiveRankLoRA().adapt(fam.A_star, fam.new_task(seed=1), budget=48)
    >>> res.info["rank"], res.params
    (1, 12)
    """

    noise_var: float | None = None
    name: ClassVar[str] = "adaptive-rank"

    def __post_init__(self) -> None:
        if self.noise_var is not None:
            check_float(self.noise_var, "noise_var")

    def update(self, problem: AdaptationProblem) -> Update:
        """Reduced-rank regression at the salience-chosen rank ``r*`` (see Notes)."""
        r_max = problem.max_rank()
        d = problem.d
        _, lam = reduced_rank_update(problem.stats, problem.base, 0)
        if problem.n is None:
            sigma2 = 0.0
            rank = int(np.sum(lam[:r_max] > POPULATION_SALIENCE_RTOL * max(lam[0], 1e-300)))
        else:
            sigma2 = (noise_variance(problem.stats, problem.base, problem.n)
                      if self.noise_var is None else float(self.noise_var))
            r = np.arange(r_max + 1)
            risk = -np.concatenate([[0.0], np.cumsum(lam[:r_max])]) + 2 * sigma2 * r * (2 * d - r) / problem.n
            rank = int(np.argmin(risk))
        delta, _ = reduced_rank_update(problem.stats, problem.base, rank)
        return Update(delta, lora_params(d, rank), {"rank": rank, "noise_var": sigma2})


def mixture_weights(
    stats: Statistics, A: NDArray[np.float64], adapters: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Least-squares weights of fixed updates: ``argmin_c L^(A + sum_t c_t D_t)``.

    Parameters
    ----------
    stats : Statistics
        One task's statistics (T = 1).
    A : ndarray of shape (d, d)
    adapters : ndarray of shape (m, d, d)

    Returns
    -------
    ndarray of shape (m,)
        Solution of ``H c = h`` with ``H_st = <D_s Sxx, D_t>``, ``h_s = <D_s, Syx - A Sxx>``
        (minimum-norm when ``H`` is singular).
    """
    DS = adapters @ stats.Sxx[0]
    H = np.einsum("sij,tij->st", DS, adapters)
    h = np.einsum("sij,ij->s", adapters, residual_cross_covariance(stats, A)[0])
    c, *_ = scipy.linalg.lstsq(H, h)
    return c


@dataclass(frozen=True, eq=False)
class MixtureOfAdapters(AdaptationScheme):
    """A learned combination of retrained per-task adapters plus a fresh rank-r adapter.

    Parameters
    ----------
    adapters : array_like of shape (m, d, d), optional
        The retrained per-task updates ``D_t`` (LoRA-ML's ``fit.deltas``). Standard retraining
        has none: with ``adapters=None`` the scheme is the fresh adapter alone, i.e. exact
        rank-r LoRA with ``r = budget // (2d)``.
    max_iter : int, default=500
        BFGS iterations on the weights.

    Notes
    -----
    ``Delta = sum_t c_t D_t + U V^T`` with ``m + 2 d r <= budget`` trainable parameters
    (``r = (budget - m) // (2d)``, possibly 0) minimising ``L^(A + Delta)``. Given the
    weights, ``U V^T`` is the reduced-rank regression on the base ``A + sum_t c_t D_t``, so the
    weights minimise the variable-projection loss

        f(c) = sum_{i > r} s_i(Y(c))^2,   Y(c) = Sxx^{1/2} (B_0 - sum_t c_t D_t^T),

    with ``B_0^T`` the least-squares update from ``A`` and gradient
    ``df/dc_t = -2 <Y(c) - trunc_r Y(c), Sxx^{1/2} D_t^T>``, minimised by BFGS from the
    weights of the mixture alone (:func:`mixture_weights`) and from ``c = 0`` (the fresh
    adapter alone); the lower end point is kept. With ``r = 0`` the weights are the least
    squares of :func:`mixture_weights`.
    """

    adapters: ArrayLike | None = None
    max_iter: int = MIXTURE_MAX_ITER
    name: ClassVar[str] = "mixture"
    _D: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_int(self.max_iter, "max_iter")
        if self.adapters is None:
            D = np.zeros((0, 0, 0))
        else:
            D = check_array(self.adapters, "adapters", (None, None, None))
            if D.shape[1] != D.shape[2]:
                raise ValueError(f"adapters must have shape (m, d, d), got {D.shape}.")
        object.__setattr__(self, "_D", D)

    @property
    def n_adapters(self) -> int:
        """Number ``m`` of retrained adapters mixed."""
        return self._D.shape[0]

    def rank_budget(self, rank: int, d: int) -> int:
        """``m + 2 d rank``: one weight per retrained adapter plus the fresh factors."""
        return self.n_adapters + lora_params(d, rank)

    def min_budget(self, d: int) -> int:
        """``m`` with retrained adapters (the mixture alone), else ``2 d``."""
        return self.rank_budget(0 if self.n_adapters else 1, d)

    def update(self, problem: AdaptationProblem) -> Update:
        """``Delta = sum_t c_t D_t + U V^T`` by variable projection (see Notes)."""
        m = self.n_adapters
        d = problem.d
        if m and self._D.shape[1] != d:
            raise ValueError(f"adapters must have shape (m, d={d}, d={d}), got {self._D.shape}.")
        rank = problem.max_rank(reserved=m, minimum=0 if m else 1)
        stats, A = problem.stats, problem.base
        D = self._D if m else np.zeros((0, d, d))
        c = np.zeros(m)
        it = 0
        if m:
            c = mixture_weights(stats, A, D)
            if rank:
                c, it = self._weights_with_fresh(stats, A, D, rank, c)
        mix = np.tensordot(c, D, axes=1)
        fresh = reduced_rank_update(stats, A + mix, rank)[0] if rank else np.zeros((d, d))
        delta = mix + fresh
        info = {"rank": rank, "n_adapters": m, "iterations": it, "weights": tuple(c.tolist())}
        return Update(delta, self.rank_budget(rank, d), info)

    def _weights_with_fresh(self, stats: Statistics, A: NDArray, D: NDArray, rank: int,
                            c_mix: NDArray) -> tuple[NDArray, int]:
        """Weights minimising the loss once the fresh adapter is optimised out (see Notes)."""
        root = covariance_sqrt(stats.Sxx[0])[0]
        Y0 = root @ least_squares_update(stats, A).T
        Ys = root @ np.swapaxes(D, 1, 2)

        def tail(c: NDArray) -> tuple[float, NDArray]:
            P, sv, Qt = np.linalg.svd(Y0 - np.tensordot(c, Ys, axes=1))
            R = (P[:, rank:] * sv[rank:]) @ Qt[rank:]
            return float(np.sum(sv[rank:] ** 2)), -2.0 * np.einsum("tij,ij->t", Ys, R)

        # The reduced loss is not convex in c: start from the mixture alone and from the
        # fresh adapter alone, and keep the better end point (no worse than either).
        best = None
        gtol = MIXTURE_GTOL * max(np.sum(Y0**2), np.finfo(float).tiny)
        for c0 in (c_mix, np.zeros_like(c_mix)):
            # BFGS in Python: with a handful of weights, L-BFGS-B's per-call overhead dominates.
            res = scipy.optimize.minimize(tail, c0, jac=True, method="BFGS",
                                          options={"maxiter": self.max_iter, "gtol": gtol})
            if best is None or res.fun < best.fun:
                best = res
        return best.x, int(best.nit)
