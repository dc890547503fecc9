"""Slow per-sample reference implementations, for tests and benchmarks only.

These form every loss and gradient from the ``N x d`` data matrices at every step, as the
authors' scripts do. They are deliberately independent of :mod:`lowrank_theory.losses` (no
sufficient statistics), so that agreement between the two is evidence that both are right.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from lowrank_theory._validation import as_seed_generator
from lowrank_theory.adapters import Adapter, as_adapter
from lowrank_theory.lora_ml import PAPER_INIT_SCALE, PAPER_INNER_STEPS, PAPER_LR_A, PAPER_LR_U
from lowrank_theory.tasks import TaskData

__all__ = ["per_sample_loss", "per_sample_gradient", "paper_protocol_per_sample"]


def per_sample_loss(data: TaskData, W: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(1/N) sum_i ||y_ti - W_t x_ti||^2`` for each task, by an explicit loop over samples."""
    out = np.zeros(data.T)
    for t in range(data.T):
        for x, y in zip(data.X[t], data.Y[t]):
            r = y - W[t] @ x
            out[t] += r @ r
    return out / data.n


def per_sample_gradient(data: TaskData, W: NDArray[np.float64]) -> NDArray[np.float64]:
    """``dL_t/dW_t = (2/N) E_t^T X_t`` with residuals ``E_t = X_t W_t^T - Y_t`` (N x d)."""
    E = data.X @ np.swapaxes(W, 1, 2) - data.Y
    return 2.0 * np.swapaxes(E, 1, 2) @ data.X / data.n


def paper_protocol_per_sample(
    data: TaskData,
    k: int | Adapter,
    seed: int | np.random.Generator | None = None,
    rounds: int = 3000,
    inner_steps: int = PAPER_INNER_STEPS,
    lr_U: float = PAPER_LR_U,
    lr_A: float = PAPER_LR_A,
    init_scale: float = PAPER_INIT_SCALE,
) -> tuple[NDArray[np.float64], tuple[NDArray[np.float64], ...]]:
    """The paper's block-coordinate gradient descent with per-sample gradients.

    Draws its start exactly as ``fit_lora_ml(data, k, method="paper", seed=seed)`` does, so the
    two produce the same iterates up to round-off.

    Returns
    -------
    A : ndarray of shape (d, d)
    factors : tuple of ndarray of shape (T, d, r)
    """
    adapter = as_adapter(k)
    rng = as_seed_generator(seed)
    A = np.zeros((data.d, data.d))
    factors = adapter.init_factors(data.T, data.d, rng, init_scale)
    for _ in range(rounds):
        for _ in range(inner_steps):
            G = per_sample_gradient(data, A + adapter.delta(factors))
            grads = adapter.factor_gradients(factors, G)
            factors = tuple(f - lr_U * g for f, g in zip(factors, grads))
        G = per_sample_gradient(data, A + adapter.delta(factors))
        A = A - lr_A * G.sum(axis=0)
    return A, factors
