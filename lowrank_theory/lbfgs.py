"""L-BFGS on the LoRA-ML objective, in units of order one.

Three pieces the exact and L-BFGS methods of :mod:`lowrank_theory.lora_ml` share:

- :func:`minimize` runs scipy's L-BFGS-B to an absolute objective target (its relative test
  stops far too early on objectives that go to zero);
- :func:`variable_projection` minimises over the factors with the base eliminated by its normal
  equations, :func:`joint` over the base and the factors together;
- :class:`Units` brings a problem's statistics to unit scale by powers of two, exactly, so
  that tolerances and step heuristics see numbers of order one whatever the data's units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.typing import NDArray

from lowrank_theory.adapters import Adapter, Factors
from lowrank_theory.losses import Statistics, loss_gradient
from lowrank_theory.objective import pack, summed_objective, unpack
from lowrank_theory.retraining import BaseStep

__all__ = [
    "Units",
    "minimize",
    "variable_projection",
    "joint",
    "objective_target",
    "least_squares_models",
    "centred",
    "EXACT_FTOL",
    "LBFGS_MAX_ITER",
]

#: Objective below ``EXACT_FTOL * scale`` ends the exact solver: the excess loss is then at the
#: level of double-precision round-off of a sum of squares of entries of size ``scale``.
EXACT_FTOL = 1e-26
#: Default iteration budget of the L-BFGS solvers.
LBFGS_MAX_ITER = 20000


def minimize(
    fun: Callable[[NDArray], tuple[float, NDArray]],
    x0: NDArray,
    max_iter: int,
    ftol_abs: float,
    history: list[float],
) -> scipy.optimize.OptimizeResult:
    """Run scipy's L-BFGS-B on ``fun`` (value and gradient) until ``f <= ftol_abs`` or ``max_iter``.

    Appends each iteration's objective to ``history``; ``max_iter=0`` returns the start.
    """
    # scipy's ftol is relative to max(|f|, 1): for objectives that go to zero it stops far too
    # early, so the relative test is switched off and an absolute target ends the run instead
    # (scipy ends the run when the callback raises StopIteration).
    if max_iter == 0:
        return scipy.optimize.OptimizeResult(x=x0, nit=0, message="max_iter=0: no iteration")

    def callback(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        history.append(float(intermediate_result.fun))
        if intermediate_result.fun <= ftol_abs:
            raise StopIteration

    return scipy.optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={"maxiter": max_iter, "ftol": 0.0, "gtol": 0.0, "maxcor": 30},
    )


def variable_projection(
    stats: Statistics, adapter: Adapter, factors: Factors, max_iter: int, ftol_abs: float,
    history: list[float],
) -> tuple[NDArray, Factors, scipy.optimize.OptimizeResult]:
    """L-BFGS over the factors with the base eliminated by its exact minimiser.

    Minimises ``phi(U) = min_A F(A, U)``, the base given by the normal equations
    ``A (sum_t Sxx_t) = sum_t (Syx_t - Delta_t Sxx_t)``; by the envelope theorem
    ``grad phi(U) = dF/dU`` at that base. Appends each iteration's objective to ``history``.

    Returns
    -------
    A : ndarray of shape (d, d)
    factors : tuple of ndarray of shape (T, d, r)
    res : scipy.optimize.OptimizeResult
    """
    base = BaseStep(stats)
    shape = factors[0].shape
    d = stats.d

    def fun(x: NDArray) -> tuple[float, NDArray]:
        _, fac = unpack(x, d, shape, adapter.n_factors, with_A=False)
        delta = adapter.delta(fac)
        W = base(delta) + delta
        G = loss_gradient(stats, W)
        # Envelope theorem: at the optimal base, dF/dA = 0, so the reduced gradient is the
        # partial gradient in the factors.
        return summed_objective(stats, 0.0, W), pack(None, adapter.factor_gradients(fac, G))

    res = minimize(fun, pack(None, factors), max_iter, ftol_abs, history)
    _, fac = unpack(res.x, d, shape, adapter.n_factors, with_A=False)
    return base(adapter.delta(fac)), fac, res


def objective_target(syy: float) -> float:
    """``EXACT_FTOL * max(1, syy)``, with ``syy = sum_t E||y_t||^2``: the end of an exact run.

    Examples
    --------
    >>> objective_target(1e4)
    1e-22
    """
    return EXACT_FTOL * max(1.0, float(syy))


@dataclass(frozen=True)
class Units:
    """Powers of two that bring a problem's inputs and outputs to unit scale.

    Inputs are divided by ``x``, outputs by ``y``; ``y / x`` is a power of four. Then the
    statistics, models (``W -> W x / y``), factors (``U -> U sqrt(x / y)``) and objectives
    (``F -> F / y^2``) all change by powers of two, exactly, and the solvers' tolerances and
    step heuristics meet numbers of order one whatever the data's units.

    Examples
    --------
    >>> from lowrank_theory import TaskData, TaskFamily
    >>> from lowrank_theory.losses import statistics
    >>> data = TaskFamily.random(d=3, k=1, T=2, seed=0).sample(50, seed=1)
    >>> units = Units.of(statistics(TaskData(data.X * 1e6, data.Y * 1e9)))
    >>> units.x == 2.0**20, units.model == 4.0**6
    (True, True)
    """

    x: float
    y: float

    @classmethod
    def of(cls, stats: Statistics) -> Units:
        """``x^2`` near the inputs' mean square, ``y^2`` near the outputs'."""
        T, d = stats.T, stats.d
        x_sq = float(np.trace(np.sum(stats.Sxx, axis=0))) / (T * d)
        y_sq = float(np.sum(stats.syy)) / (T * d)
        x = 2.0 ** round(0.5 * np.log2(x_sq)) if x_sq > 0 else 1.0
        y = x * 4.0 ** round(0.25 * np.log2(y_sq / x**2)) if y_sq > 0 else x
        return cls(x, y)

    @property
    def model(self) -> float:
        """Factor from normalised to original models, ``y / x``."""
        return self.y / self.x

    def normalise(self, stats: Statistics) -> Statistics:
        """The statistics of inputs ``X / x`` and outputs ``Y / y``."""
        x, y = self.x, self.y
        return Statistics(
            stats.Sxx / x**2, stats.Sxy / (x * y), stats.syy / y**2, stats.offset / y**2,
            stats.population, None if stats.W_star is None else stats.W_star / self.model,
            stats.identity_inputs,
        )

    def factors_in(self, factors: Factors) -> Factors:
        """Original factors in normalised units."""
        return tuple(f / np.sqrt(self.model) for f in factors)

    def factors_out(self, factors: Factors) -> Factors:
        """Normalised factors in original units."""
        return tuple(f * np.sqrt(self.model) for f in factors)


def least_squares_models(stats: Statistics) -> NDArray[np.float64] | None:
    """Each task's own least-squares model ``Syx_t Sxx_t^{-1}``; None if a design is singular."""
    try:
        return np.stack(
            [scipy.linalg.solve(S, B, assume_a="pos").T for S, B in zip(stats.Sxx, stats.Sxy)]
        )
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgWarning):
        return None


def centred(stats: Statistics, W_ls: NDArray[np.float64]) -> Statistics:
    """Sample statistics whose objective is measured from each task's least-squares model.

    ``L_t(W) = L_t(W_ls_t) + tr((W - W_ls_t) Sxx_t (W - W_ls_t)^T)`` exactly. The residual form
    keeps full relative precision near the optimum, where the expanded form loses digits to
    the cancellation of ``tr(W Sxx W^T)``, ``2 tr(W Sxy)`` and ``syy``: on it L-BFGS stops on a
    flat, noisy objective with a relative gradient near 1e-9.
    """
    return Statistics(stats.Sxx, stats.Sxy, stats.syy, 0.0, stats.population, W_ls, False)




def joint(
    stats: Statistics, adapter: Adapter, A: NDArray, factors: Factors, max_iter: int,
    ftol_abs: float, history: list[float],
) -> tuple[NDArray, Factors, scipy.optimize.OptimizeResult]:
    """L-BFGS jointly over the base and the factors, gradient ``(sum_t G_t, dF/dU)``.

    Appends each iteration's objective to ``history``.

    Returns
    -------
    A : ndarray of shape (d, d)
    factors : tuple of ndarray of shape (T, d, r)
    res : scipy.optimize.OptimizeResult
    """
    shape, d = factors[0].shape, stats.d

    def fun(x: NDArray) -> tuple[float, NDArray]:
        A_, fac = unpack(x, d, shape, adapter.n_factors, with_A=True)
        W = A_ + adapter.delta(fac)
        G = loss_gradient(stats, W)
        return summed_objective(stats, 0.0, W), pack(G.sum(axis=0), adapter.factor_gradients(fac, G))

    res = minimize(fun, pack(A, factors), max_iter, ftol_abs, history)
    A_, fac = unpack(res.x, d, shape, adapter.n_factors, with_A=True)
    return A_, fac, res
