"""Standard retraining (SR): one base fitted to all tasks, and the base step shared with LoRA-ML.

SR solves ``min_A sum_t L_t(A)`` (Theorem 1 of the paper). The same normal equations with each task's
adapter update subtracted give the exact A-step of alternating LoRA-ML solvers, so both live
here as :class:`BaseStep`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
from numpy.typing import NDArray

from lowrank_theory._validation import COVARIANCE_RTOL
from lowrank_theory.losses import Source, Statistics, statistics
from lowrank_theory.tasks import TaskData, TaskFamily

__all__ = ["standard_retraining", "BaseStep", "check_pooled_design"]

_FIX = "use more samples (T * n comfortably above d) or a population TaskFamily"


def check_pooled_design(source: Source) -> None:
    """Refuse a sample whose pooled inputs cannot identify the base.

    Parameters
    ----------
    source : TaskFamily or TaskData
        Populations always pass (their covariances are positive definite by construction).

    Raises
    ------
    ValueError
        Fewer pooled samples than dimensions (``T * n < d``): the pooled second moment
        ``sum_t X_t^T X_t / n`` is then singular and every base-dependent answer meaningless,
        even when a Cholesky factorisation happens to succeed on the round-off.

    Notes
    -----
    The conditioning test (a nearly singular but full-rank design) is made where the
    factorisation is computed, in :class:`BaseStep`.
    """
    if isinstance(source, TaskData) and source.T * source.n < source.d:
        raise ValueError(
            f"the sample has T * n = {source.T} * {source.n} = {source.T * source.n} pooled "
            f"samples for d = {source.d} dimensions, so the pooled input second moment "
            f"sum_t X_t^T X_t / n is singular and the base is not identified: {_FIX}."
        )


def _pooled_cholesky(pooled: NDArray[np.float64]) -> tuple[NDArray[np.float64], bool]:
    """Cholesky factor of the pooled second moment, refusing a singular or ill-conditioned one.

    A factorisation can succeed on a singular matrix by round-off, so the reciprocal condition
    number (LAPACK ``pocon``, from the factor in O(d^2)) is checked against
    ``COVARIANCE_RTOL``: below it, the normal equations amplify round-off by more than 1e10.
    """
    try:
        c, lower = scipy.linalg.cho_factor(pooled)
    except np.linalg.LinAlgError:
        rcond = 0.0
    else:
        anorm = float(np.max(np.sum(np.abs(pooled), axis=0)))
        rcond, info = scipy.linalg.lapack.dpocon(c, anorm, uplo="L" if lower else "U")
        if info == 0 and rcond >= COVARIANCE_RTOL:
            return c, lower
    raise ValueError(
        "the pooled input second moment sum_t X_t^T X_t / N is singular or nearly so "
        f"(reciprocal condition number {rcond:.2g} < {COVARIANCE_RTOL:g}), so the base is "
        f"not identified: {_FIX}."
    )


class BaseStep:
    """Exact minimiser over the base ``A`` of ``sum_t L_t(A + Delta_t)`` for fixed updates.

    Parameters
    ----------
    stats : Statistics
        Statistics of shape (T, d, d) (no batch axes).

    Raises
    ------
    ValueError
        If the pooled second moment ``sum_t Sxx_t`` is singular or its condition number
        exceeds ``1 / COVARIANCE_RTOL`` (fewer pooled samples than dimensions, or barely
        more): the base is then not identified.

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
        self._cho = _pooled_cholesky(np.sum(stats.Sxx, axis=0))

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

    Raises
    ------
    ValueError
        A sample with fewer pooled samples than dimensions (``T * n < d``) or an
        ill-conditioned pooled design (see :class:`BaseStep`).

    Notes
    -----
    Population with identity covariance: ``A_SR = A* + (1/T) sum_t U*_t U*_t^T``, computed
    as ``A* + U U^T / T`` with the offsets' factors side by side, so memory stays O(d^2).
    General case: ``A_SR = (sum_t Syx_t)(sum_t Sxx_t)^{-1}``, with per-task covariances
    ``(sum_t W*_t Sigma_t)(sum_t Sigma_t)^{-1}`` (Theorem 1 of the paper).

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
    check_pooled_design(source)
    return BaseStep(statistics(source))()
