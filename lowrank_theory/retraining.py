"""Standard retraining (SR): one base fitted to all tasks, and the base step shared with LoRA-ML.

SR solves ``min_A sum_t L_t(A)`` (THEORY.md sec. 3). The same normal equations with each task's
adapter update subtracted give the exact A-step of alternating LoRA-ML solvers, so both live
here as :class:`BaseStep`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from lowrank_theory.losses import Source, Statistics, statistics
from lowrank_theory.tasks import TaskFamily

__all__ = ["standard_retraining", "BaseStep"]


class BaseStep:
    """Exact minimiser over the base ``A`` of ``sum_t L_t(A + Delta_t)`` for fixed updates.

    Parameters
    ----------
    stats : Statistics
        Statistics of shape (T, d, d) (no batch axes).

    Raises
    ------
    ValueError
        If the pooled second moment ``sum_t Sxx_t`` is singular (fewer pooled samples than
        dimensions): the base is then not identified.

    Notes
    -----
    Setting the gradient ``sum_t 2((A + Delta_t) Sxx_t - Syx_t)`` to zero gives

        A (sum_t Sxx_t) = sum_t (Syx_t - Delta_t Sxx_t),

    solved with one Cholesky factorisation of ``sum_t Sxx_t`` reused across calls.
    """

    def __init__(self, stats: Statistics) -> None:
        self._stats = stats
        self._pooled_Sxy = np.sum(stats.Sxy, axis=0)
        if stats.identity_inputs:
            self._cho = None
            return
        pooled = np.sum(stats.Sxx, axis=0)
        try:
            self._cho = scipy.linalg.cho_factor(pooled)
        except np.linalg.LinAlgError:
            raise ValueError(
                "the pooled input second moment sum_t X_t^T X_t / N is singular: use more "
                "samples (T * n >= d) or a population TaskFamily."
            ) from None

    def __call__(self, delta: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        """Return the optimal base, shape (d, d), for updates ``delta`` of shape (T, d, d)."""
        rhs = self._pooled_Sxy
        if self._cho is None:
            # Identity inputs: A = mean_t (W*_t - Delta_t).
            if delta is not None:
                rhs = rhs - np.sum(delta, axis=0).T
            return rhs.T / self._stats.T
        if delta is not None:
            # (Delta_t Sxx_t)^T = Sxx_t Delta_t^T since Sxx_t is symmetric.
            rhs = rhs - np.sum(self._stats.Sxx @ np.swapaxes(delta, -1, -2), axis=0)
        return scipy.linalg.cho_solve(self._cho, rhs).T


def standard_retraining(source: Source) -> NDArray[np.float64]:
    """The standard-retraining base ``A_SR = argmin_A sum_t L_t(A)``.

    Parameters
    ----------
    source : TaskFamily or TaskData
        Population (exact) or a finite sample (pooled least squares).

    Returns
    -------
    ndarray of shape (d, d)

    Notes
    -----
    Population with identity covariance: ``A_SR = A* + (1/T) sum_t U*_t U*_t^T``, computed
    as ``A* + U U^T / T`` with the offsets' factors side by side, so memory stays O(d^2).
    General case: ``A_SR = (sum_t Syx_t)(sum_t Sxx_t)^{-1}``, with per-task covariances
    ``(sum_t W*_t Sigma_t)(sum_t Sigma_t)^{-1}`` (THEORY.md sec. 3, Theorem 1 of the paper).

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=5, k=1, T=3, seed=0)
    >>> A_sr = standard_retraining(fam)
    >>> bool(np.allclose(A_sr, fam.W_star.mean(axis=0)))
    True
    """
    if isinstance(source, TaskFamily) and source.isotropic:
        factors = np.concatenate(list(source.U_star), axis=1)
        return source.A_star + factors @ factors.T / source.T
    return BaseStep(statistics(source))()
