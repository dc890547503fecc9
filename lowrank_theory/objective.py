"""The LoRA-ML objective, its exact gradient, and the packing of its points.

``F(A, U) = sum_t L_t(A + Delta_t)`` with ``Delta_t = U_t U_t^T`` (symmetric adapter) or
``U_t V_t^T`` (asymmetric); in the population it is the excess loss
``sum_t ||(A + Delta_t - W*_t) Sigma_t^{1/2}||_F^2``, zero at the ground truth (docs/theory.md,
section 5). The solvers (:mod:`lowrank_theory.lora_ml`), the landscape
(:mod:`lowrank_theory.landscape`) and the stationary-point certificates
(:mod:`lowrank_theory.stationary`) share these functions, so each formula is written once.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._validation import check_array
from lowrank_theory.adapters import Adapter, AsymmetricAdapter, Factors, SymmetricAdapter
from lowrank_theory.losses import Source, Statistics, loss_gradient, statistics, summed_excess_loss
from lowrank_theory.tasks import TaskData, TaskFamily

__all__ = [
    "lora_ml_objective",
    "lora_ml_gradient",
    "stationarity",
    "relative_stationarity",
    "full_gradient_norm",
    "summed_objective",
    "check_source",
    "check_point",
    "pack",
    "unpack",
]


# --------------------------------------------------------------------------- validation
def check_source(source: Source) -> None:
    """Raise ``TypeError`` unless ``source`` is a TaskFamily (population) or TaskData (sample)."""
    if not isinstance(source, (TaskFamily, TaskData)):
        raise TypeError(
            "source must be a TaskFamily (population) or TaskData (sample), "
            f"got {type(source).__name__}."
        )


def check_point(
    source: Source, A: ArrayLike, U: ArrayLike, V: ArrayLike | None
) -> tuple[NDArray[np.float64], Factors, Adapter]:
    """Validate a point ``(A, U[, V])`` of ``source``'s problem; return it with its adapter.

    ``V`` given makes the adapter asymmetric (``U_t V_t^T``), else symmetric (``U_t U_t^T``).
    """
    check_source(source)
    T, d = source.T, source.d
    A = check_array(A, "A", (d, d))
    U = check_array(U, "U", (T, d, None))
    if V is None:
        return A, (U,), SymmetricAdapter(U.shape[2])
    V = check_array(V, "V", U.shape)
    return A, (U, V), AsymmetricAdapter(U.shape[2])


# --------------------------------------------------------------------------- objective
def summed_objective(stats: Statistics, A: NDArray, delta: NDArray) -> float:
    """``F`` from statistics: ``sum_t`` excess (population) or empirical loss of ``A + delta_t``."""
    return float(summed_excess_loss(stats, A + delta))


def _isotropic_residual(fam: TaskFamily, A: NDArray, factors: Factors, t: int) -> NDArray:
    # One task's residual W_t - W*_t at a time: memory O(d^2) however large T is.
    Ut = fam.U_star[t]
    delta = factors[0][t] @ factors[-1][t].T
    return (A - fam.A_star) + delta - Ut @ Ut.T


def lora_ml_objective(
    source: Source, A: ArrayLike, U: ArrayLike, V: ArrayLike | None = None
) -> float:
    """LoRA-ML objective of a base and per-task adapters.

    Parameters
    ----------
    source : TaskFamily or TaskData
        Population or sample.
    A : array_like of shape (d, d)
        Base.
    U : array_like of shape (T, d, r)
        Adapter factors.
    V : array_like of shape (T, d, r), optional
        Right factors: given, the adapter is asymmetric ``U_t V_t^T``; else ``U_t U_t^T``.

    Returns
    -------
    float
        Population: the excess loss ``sum_t ||(A + Delta_t - W*_t) Sigma_t^{1/2}||_F^2``
        (zero at the ground truth). Sample: ``sum_t (1/N) sum_i ||y_ti - (A + Delta_t) x_ti||^2``.

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=6, k=2, T=3, seed=0)
    >>> lora_ml_objective(fam, fam.A_star, fam.U_star)
    0.0
    """
    A, factors, adapter = check_point(source, A, U, V)
    if isinstance(source, TaskFamily) and source.isotropic:
        return float(
            sum(np.sum(_isotropic_residual(source, A, factors, t) ** 2) for t in range(source.T))
        )
    return summed_objective(statistics(source), A, adapter.delta(factors))


def lora_ml_gradient(
    source: Source, A: ArrayLike, U: ArrayLike, V: ArrayLike | None = None
) -> tuple[NDArray[np.float64], ...]:
    """Exact gradient of :func:`lora_ml_objective`.

    Returns
    -------
    gA : ndarray of shape (d, d)
        ``sum_t G_t`` with ``G_t = dL_t/dW_t = 2 (W_t Sxx_t - Syx_t)``.
    gU : ndarray of shape (T, d, r)
        ``(G_t + G_t^T) U_t`` (symmetric) or ``G_t V_t`` (asymmetric).
    gV : ndarray of shape (T, d, r)
        ``G_t^T U_t``; returned only when ``V`` is given.
    """
    A, factors, adapter = check_point(source, A, U, V)
    if isinstance(source, TaskFamily) and source.isotropic:
        gA = np.zeros_like(A)
        grads = tuple(np.empty_like(f) for f in factors)
        for t in range(source.T):
            G = 2.0 * _isotropic_residual(source, A, factors, t)
            gA += G
            for g, gt in zip(grads, adapter.factor_gradients(tuple(f[t] for f in factors), G)):
                g[t] = gt
        return (gA, *grads)
    stats = statistics(source)
    G = loss_gradient(stats, A + adapter.delta(factors))
    return (G.sum(axis=0), *adapter.factor_gradients(factors, G))


# --------------------------------------------------------------------------- packing
def pack(A: NDArray | None, factors: Factors) -> NDArray:
    """One vector ``[vec(A), vec(U), (vec(V))]`` (row-major; ``A`` left out when None)."""
    parts = ([] if A is None else [A.ravel()]) + [f.ravel() for f in factors]
    return np.concatenate(parts)


def unpack(x: NDArray, d: int, shape: tuple[int, ...], n_factors: int, with_A: bool):
    """Inverse of :func:`pack`: ``(A or None, factors)`` with factors of ``shape``."""
    offset = d * d if with_A else 0
    A = x[:offset].reshape(d, d) if with_A else None
    size = int(np.prod(shape))
    factors = tuple(
        x[offset + i * size : offset + (i + 1) * size].reshape(shape) for i in range(n_factors)
    )
    return A, factors


def stationarity(
    stats: Statistics, adapter: Adapter, A: NDArray[np.float64], factors: Factors
) -> tuple[float, float]:
    """Gradient norm of the LoRA-ML objective and its size relative to its terms.

    Parameters
    ----------
    stats : Statistics
        Statistics of shape (T, d, d).
    adapter : Adapter
    A : ndarray of shape (d, d)
    factors : tuple of ndarray of shape (T, d, r)

    Returns
    -------
    grad_norm : float
        ``||(sum_t G_t, dF/dU[, dF/dV])||`` with ``G_t = 2 (W_t Sxx_t - Syx_t)``.
    relative : float
        :func:`relative_stationarity`:
        ``grad_norm / (2 ||(W_t Sxx_t, Syx_t)_t|| max(1, ||factors||))``, the gradient
        against the terms that cancel in it, times the factor norm that the chain rule
        multiplies them by. Invariant to rescaling the outputs, and at round-off level
        (about 1e-16 times the number of terms) at an exact stationary point.
    """
    W = A + adapter.delta(factors)
    WS = W if stats.identity_inputs else W @ stats.Sxx
    G = loss_gradient(stats, W)
    grads = (G.sum(axis=0), *adapter.factor_gradients(factors, G))
    grad_norm = _norm(*grads)
    return grad_norm, relative_stationarity(grad_norm, _norm(WS, stats.Syx), _norm(*factors))


def _norm(*arrays: NDArray[np.float64]) -> float:
    # Frobenius norm of several arrays together by BLAS's nrm2, which scales as it sums: data
    # at the edge of double precision (entries near 1e150) square past it in a plain sum.
    norms = [scipy.linalg.norm(np.ravel(a), check_finite=False) for a in arrays]
    return float(scipy.linalg.norm(norms, check_finite=False))


def relative_stationarity(grad_norm: float, terms: float, factor_norm: float) -> float:
    """The gradient norm relative to what cancels in it: ``g / (2 terms max(1, ||factors||))``.

    Parameters
    ----------
    grad_norm : float
        ``||(sum_t G_t, dF/dU[, dF/dV])||``.
    terms : float
        ``||(W_t Sxx_t, Syx_t)_t||``, the terms whose difference is each ``G_t / 2``.
    factor_norm : float
        ``||factors||``, which the chain rule multiplies them by.

    Returns
    -------
    float
        0 when every term is zero.

    Examples
    --------
    >>> relative_stationarity(1e-12, 10.0, 0.5)
    5e-14
    """
    scale = 2.0 * terms * max(1.0, factor_norm)
    return grad_norm / scale if scale > 0 else 0.0


def full_gradient_norm(stats: Statistics, adapter: Adapter, A: NDArray, factors: Factors) -> float:
    """The gradient norm of :func:`stationarity` alone (certificates of stationary points)."""
    return stationarity(stats, adapter, A, factors)[0]
