"""Per-task squared losses through d x d sufficient statistics.

For a model ``W`` the finite-sample loss of task ``t`` is

    L^_t(W) = (1/N) sum_i ||y_i - W x_i||^2 = tr(W Sxx W^T) - 2 tr(W Sxy) + syy,

with ``Sxx = X^T X / N``, ``Sxy = X^T Y / N`` and ``syy = tr(Y^T Y) / N``. The population loss
has the same form with ``Sxx = Sigma``, ``Sxy = Sigma W*^T`` and
``syy = tr(W* Sigma W*^T) + d sigma^2``. Every later computation needs only these statistics,
so its cost does not grow with the number of samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lowrank_theory.tasks import TaskData, TaskFamily

__all__ = [
    "Statistics",
    "statistics",
    "task_losses",
    "excess_losses",
    "summed_excess_loss",
    "loss_gradient",
    "Source",
]

#: What the losses, solvers and checks accept as a problem: the population or a sample.
Source = TaskFamily | TaskData


@dataclass(frozen=True, eq=False)
class Statistics:
    """Second-moment statistics of every task.

    Attributes
    ----------
    Sxx : ndarray of shape (..., T, d, d)
        Input second moments (symmetric positive semi-definite).
    Sxy : ndarray of shape (..., T, d, d)
        Input-output cross moments ``E[x y^T]``.
    syy : ndarray of shape (..., T)
        Output second moments ``E||y||^2``.
    offset : float
        Constant subtracted from the summed loss to report an *excess* loss: ``T d sigma^2``
        in the population (the noise floor), 0 for a finite sample.
    population : bool
        Whether the statistics are exact expectations.
    W_star : ndarray of shape (..., T, d, d), optional
        Population only: the task parameters, so that :func:`excess_losses` can use the
        residual form ``tr(R Sxx R^T)`` instead of a difference of large numbers.
    identity_inputs : bool
        Whether every ``Sxx`` is the identity (population with ``Sigma = I``): products with
        ``Sxx`` are then skipped, and closed-form adapter steps apply.

    Leading axes ``...`` (a batch of independent problems, e.g. seeds) broadcast through
    :func:`task_losses` and :func:`loss_gradient`.
    """

    Sxx: NDArray[np.float64]
    Sxy: NDArray[np.float64]
    syy: NDArray[np.float64]
    offset: float = 0.0
    population: bool = False
    W_star: NDArray[np.float64] | None = None
    identity_inputs: bool = False

    @property
    def T(self) -> int:
        """Number of tasks."""
        return self.Sxx.shape[-3]

    @property
    def d(self) -> int:
        """Dimension."""
        return self.Sxx.shape[-1]

    @property
    def Syx(self) -> NDArray[np.float64]:
        """``Sxy^T`` per task, shape (..., T, d, d)."""
        return np.swapaxes(self.Sxy, -1, -2)

    def task(self, t: int) -> Statistics:
        """The statistics of task ``t`` alone (T = 1)."""
        per_task = 0.0 if self.T == 0 else self.offset / self.T
        return Statistics(
            self.Sxx[..., t : t + 1, :, :],
            self.Sxy[..., t : t + 1, :, :],
            self.syy[..., t : t + 1],
            per_task,
            self.population,
            None if self.W_star is None else self.W_star[..., t : t + 1, :, :],
            self.identity_inputs,
        )


def statistics(source: Source) -> Statistics:
    """Sufficient statistics of a task family (population) or of a sample.

    Parameters
    ----------
    source : TaskFamily or TaskData
        The population (exact expectations) or a finite sample.

    Returns
    -------
    Statistics
        ``Sxx``, ``Sxy`` of shape (T, d, d) and ``syy`` of shape (T,).

    Raises
    ------
    TypeError
        If ``source`` is neither a TaskFamily nor a TaskData.

    Notes
    -----
    Population: ``Sxx = Sigma_t``, ``Sxy = Sigma_t W*_t^T``,
    ``syy = tr(W*_t Sigma_t W*_t^T) + d sigma^2``.

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=3, k=1, T=2, sigma=0.5, seed=0)
    >>> stats = statistics(fam)
    >>> stats.Sxx.shape, stats.offset  # offset T d sigma^2 = 2 * 3 * 0.25
    ((2, 3, 3), 1.5)
    """
    if isinstance(source, TaskData):
        X, Y = source.X, source.Y
        n = X.shape[1]
        Xt = np.swapaxes(X, 1, 2)
        return Statistics(Xt @ X / n, Xt @ Y / n, np.einsum("tij,tij->t", Y, Y) / n)
    if isinstance(source, TaskFamily):
        S = source.task_covariances()
        W = source.W_star
        Sxy = S @ np.swapaxes(W, 1, 2)
        syy = np.einsum("tij,tji->t", W, Sxy) + source.d * source.sigma**2
        offset = source.T * source.d * source.sigma**2
        return Statistics(
            S, Sxy, syy, offset, population=True, W_star=W, identity_inputs=source.isotropic
        )
    raise TypeError(
        f"source must be a TaskFamily (population) or TaskData (sample), got {type(source).__name__}."
    )


def task_losses(stats: Statistics, W: NDArray[np.float64]) -> NDArray[np.float64]:
    """Loss of each task's model, ``tr(W Sxx W^T) - 2 tr(W Sxy) + syy``.

    Parameters
    ----------
    stats : Statistics
        Statistics of shape (..., T, d, d).
    W : ndarray of shape (..., T, d, d) or (d, d)
        One model per task (or one model shared by all).

    Returns
    -------
    ndarray of shape (..., T)

    Examples
    --------
    At the truth only the noise is left, ``d sigma^2`` per task:

    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=3, k=1, T=2, sigma=0.5, seed=0)
    >>> np.round(task_losses(statistics(fam), fam.W_star), 12)
    array([0.75, 0.75])
    """
    quad = np.sum((W if stats.identity_inputs else W @ stats.Sxx) * W, axis=(-1, -2))
    cross = np.sum(W * stats.Syx, axis=(-1, -2))
    return quad - 2.0 * cross + stats.syy


def loss_gradient(stats: Statistics, W: NDArray[np.float64]) -> NDArray[np.float64]:
    """Gradient of each task's loss with respect to its model, ``2 (W Sxx - Sxy^T)``.

    Parameters
    ----------
    stats : Statistics
        Statistics of shape (..., T, d, d).
    W : ndarray of shape (..., T, d, d) or (d, d)

    Returns
    -------
    ndarray of shape (..., T, d, d)
    """
    return 2.0 * ((W if stats.identity_inputs else W @ stats.Sxx) - stats.Syx)


def excess_losses(stats: Statistics, W: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-task loss above the noise floor: population ``tr(R Sxx R^T)``, ``R = W - W*``.

    For a sample there is no known floor and the empirical loss is returned (as
    :func:`task_losses`). The residual form keeps full relative precision as the excess
    goes to zero, which the expanded form ``tr(W Sxx W^T) - 2 tr(W Sxy) + syy`` loses.

    Parameters
    ----------
    stats : Statistics
    W : ndarray of shape (..., T, d, d) or (d, d)

    Returns
    -------
    ndarray of shape (..., T)
    """
    if stats.W_star is None:
        return task_losses(stats, W)
    R = W - stats.W_star
    return np.sum((R if stats.identity_inputs else R @ stats.Sxx) * R, axis=(-1, -2))


def summed_excess_loss(stats: Statistics, W: NDArray[np.float64]) -> NDArray[np.float64]:
    """The LoRA-ML objective of per-task models: ``sum_t`` of :func:`excess_losses`.

    Parameters
    ----------
    stats : Statistics
        Statistics of shape (..., T, d, d).
    W : ndarray of shape (..., T, d, d)

    Returns
    -------
    ndarray of shape (...)
        Population: ``sum_t ||(W_t - W*_t) Sigma_t^{1/2}||_F^2``; sample: the summed
        empirical loss ``sum_t (1/N) sum_i ||y_ti - W_t x_ti||^2``.
    """
    return np.sum(excess_losses(stats, W), axis=-1)
