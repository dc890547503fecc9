"""Per-sample reference implementations, for tests and benchmarks only.

These form every loss and gradient from the ``N x d`` data at every step, as the authors'
script does, and share no code with the rest of the library: their own gradients (written out
below), their own random start and constants, and no import from :mod:`lowrank_theory` beyond
:class:`~lowrank_theory.tasks.TaskData` for the input. Agreement between them and the library's
sufficient-statistics code is evidence that both are right. They are vectorised over tasks
(one batched product per formula), the fastest per-sample code we know how to write in numpy,
so they also serve as the honest baseline of ``benchmarks/bench_linear.py``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

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
    rank: int,
    seed: int | np.random.Generator | None = None,
    rounds: int = 3000,
    inner_steps: int = 10,
    lr_U: float = 0.003,
    lr_A: float = 0.03,
    init_scale: float = 0.1,
    convention: str = "paper",
    symmetric: bool = True,
) -> tuple[NDArray[np.float64], tuple[NDArray[np.float64], ...]]:
    """The paper's block-coordinate gradient descent with per-sample gradients.

    Parameters
    ----------
    data : TaskData
        Samples of shape (T, N, d).
    rank : int
        Adapter rank ``r``.
    seed : int, Generator or None
        The start: ``A = 0`` and factors ``init_scale * standard_normal((T, d, r))``, ``U``
        then (asymmetric) ``V``, drawn from ``numpy.random.default_rng(seed)`` in that order,
        the draws of ``fit_lora_ml(data, rank, method="paper", seed=seed)``.
    rounds, inner_steps, lr_U, lr_A, init_scale
        The schedule (the authors': 3000, 10, 0.003, 0.03, 0.1).
    convention : {"paper", "sum"}, default="paper"
        ``"paper"``: each factor steps on its task's half mean squared error
        ``l_t = (1/2N) sum_i ||W_t x_ti - y_ti||^2``, the base on ``(1/T) sum_t l_t`` (the
        authors' script). ``"sum"``: both on ``sum_t 2 l_t``.
    symmetric : bool, default=True
        ``W_t = A + U_t U_t^T``, else ``A + U_t V_t^T``.

    Returns
    -------
    A : ndarray of shape (d, d)
    factors : tuple of ndarray of shape (T, d, r)
        ``(U,)`` or ``(U, V)``.

    Notes
    -----
    With the residuals ``R_t = W_t X_t^T - Y_t^T`` (d x N) and ``H_t = R_t X_t / N``, the
    gradient of ``l_t`` in ``W_t``: ``dl_t/dU_t = (H_t + H_t^T) U_t`` (symmetric),
    ``H_t V_t`` and ``H_t^T U_t`` (asymmetric), and ``d/dA (1/T) sum_t l_t = sum_t H_t / T``.
    The ``"sum"`` convention doubles the factor steps and multiplies the base step by ``2T``.
    """
    if convention not in ("paper", "sum"):
        raise ValueError(f"convention must be 'paper' or 'sum', got {convention!r}.")
    T, N, d = data.X.shape
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    U = init_scale * rng.standard_normal((T, d, rank))
    V = U if symmetric else init_scale * rng.standard_normal((T, d, rank))
    A = np.zeros((d, d))
    factor_step = (lr_U if convention == "paper" else 2.0 * lr_U) / N
    base_step = (lr_A / T if convention == "paper" else 2.0 * lr_A) / N
    X = data.X  # (T, N, d)
    Xt = np.ascontiguousarray(np.swapaxes(data.X, 1, 2))  # (T, d, N): the authors' layout
    Yt = np.ascontiguousarray(np.swapaxes(data.Y, 1, 2))

    def scaled_gradient(U, V):
        # N * dl_t/dW_t = R_t X_t, from the residuals of every sample.
        R = (A + U @ np.swapaxes(V, 1, 2)) @ Xt - Yt
        return R @ X

    for _ in range(rounds):
        for _ in range(inner_steps):
            H = scaled_gradient(U, V)
            if symmetric:
                U = U - factor_step * ((H + np.swapaxes(H, 1, 2)) @ U)
                V = U
            else:
                U, V = (U - factor_step * (H @ V), V - factor_step * (np.swapaxes(H, 1, 2) @ U))
        A = A - base_step * scaled_gradient(U, V).sum(axis=0)
    return A, ((U,) if symmetric else (U, V))
