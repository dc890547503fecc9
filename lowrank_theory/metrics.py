"""Recovery metrics, modulo the symmetries the theory allows (``U_t -> U_t Q_t``, Q orthogonal)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._validation import check_array, check_float, check_int

__all__ = ["base_error", "offset_error", "procrustes_align", "numerical_rank", "eckart_young_tail"]


def base_error(A: ArrayLike, A_star: ArrayLike, relative: bool = False) -> float:
    """``||A - A*||_F``, or ``||A - A*||_F / ||A*||_F`` with ``relative=True``.

    Examples
    --------
    >>> import numpy as np
    >>> base_error(np.eye(2), 2 * np.eye(2), relative=True)
    0.5
    """
    A_star = check_array(A_star, "A_star", (None, None))
    A = check_array(A, "A", A_star.shape)
    err = float(np.linalg.norm(A - A_star))
    if relative:
        scale = float(np.linalg.norm(A_star))
        if scale == 0.0:
            raise ValueError("relative error needs a non-zero A_star; use relative=False.")
        err /= scale
    return err


def offset_error(
    U: ArrayLike, U_star: ArrayLike, V: ArrayLike | None = None, relative: bool = False
) -> NDArray[np.float64]:
    """Per-task ``||U_t V_t^T - U*_t U*_t^T||_F`` (``V = U`` by default).

    The comparison is of the updates, not the factors, so it is invariant under the symmetry
    ``U_t -> U_t Q_t`` (``Q_t`` orthogonal) and needs no alignment.

    Parameters
    ----------
    U : array_like of shape (T, d, r)
    U_star : array_like of shape (T, d, k)
    V : array_like of shape (T, d, r), optional
        Right factors of an asymmetric adapter.
    relative : bool, default=False
        Divide each task's error by ``||U*_t U*_t^T||_F``.

    Returns
    -------
    ndarray of shape (T,)
    """
    U_star = check_array(U_star, "U_star", (None, None, None))
    T, d, _ = U_star.shape
    U = check_array(U, "U", (T, d, None))
    V = U if V is None else check_array(V, "V", U.shape)
    truth = U_star @ np.swapaxes(U_star, 1, 2)
    err = np.linalg.norm(U @ np.swapaxes(V, 1, 2) - truth, axis=(1, 2))
    if relative:
        err = err / np.linalg.norm(truth, axis=(1, 2))
    return err


def procrustes_align(U: ArrayLike, U_star: ArrayLike) -> NDArray[np.float64]:
    """Rotate each ``U_t`` onto ``U*_t``: ``U_t R_t`` with ``R_t = argmin_{R orthogonal} ||U_t R - U*_t||_F``.

    Parameters
    ----------
    U, U_star : array_like of shape (T, d, k)

    Returns
    -------
    ndarray of shape (T, d, k)
    """
    U_star = check_array(U_star, "U_star", (None, None, None))
    U = check_array(U, "U", U_star.shape)
    out = np.empty_like(U)
    for t in range(U.shape[0]):
        R, _ = scipy.linalg.orthogonal_procrustes(U[t], U_star[t])
        out[t] = U[t] @ R
    return out


def numerical_rank(M: ArrayLike, rtol: float | None = None) -> int:
    """Number of singular values above ``rtol * s_max``.

    Parameters
    ----------
    M : array_like of shape (m, n)
    rtol : float, optional
        Relative threshold; default ``max(m, n) * eps`` (numpy's ``matrix_rank`` rule), which
        suits exact constructions. Solver outputs need a threshold above the solver tolerance.
    """
    M = check_array(M, "M", (None, None))
    s = scipy.linalg.svdvals(M)
    if s.size == 0 or s[0] == 0.0:
        return 0
    if rtol is None:
        rtol = max(M.shape) * np.finfo(np.float64).eps
    rtol = check_float(rtol, "rtol")
    return int(np.sum(s > rtol * s[0]))


def eckart_young_tail(M: ArrayLike, rank: int, Sigma: ArrayLike | None = None) -> float:
    """The squared singular values of ``M`` (in the ``Sigma`` metric) beyond the ``rank`` largest.

    Parameters
    ----------
    M : array_like of shape (m, n)
    rank : int
        ``rank >= 0``.
    Sigma : array_like of shape (n, n), optional
        A symmetric positive definite input covariance; None is the identity.

    Returns
    -------
    float
        ``min_{rank(D) <= rank} ||(M - D) Sigma^{1/2}||_F^2 = sum_{i > rank} s_i(M Sigma^{1/2})^2``
        (Eckart-Young, since ``rank(D Sigma^{1/2}) = rank(D)``): the floor of any
        rank-``rank`` update, the SR floor of Theorem 1 among others.

    Notes
    -----
    With ``Sigma`` the singular values are those of ``M L`` for the Cholesky factor
    ``Sigma = L L^T`` (``L = Sigma^{1/2} Q`` for an orthogonal ``Q``, so they agree), which
    keeps small tails accurate where the eigenvalues of ``M Sigma M^T`` would lose them to
    round-off.

    Examples
    --------
    >>> import numpy as np
    >>> float(eckart_young_tail(np.diag([3.0, 2.0, 1.0]), 1))
    5.0
    >>> round(eckart_young_tail(np.diag([3.0, 2.0, 1.0]), 1, np.diag([1.0, 1.0, 4.0])), 12)
    8.0
    """
    M = check_array(M, "M", (None, None))
    rank = check_int(rank, "rank", minimum=0)
    if Sigma is not None:
        Sigma = check_array(Sigma, "Sigma", (M.shape[1], M.shape[1]))
        M = M @ scipy.linalg.cholesky(Sigma, lower=True)
    return float(np.sum(scipy.linalg.svdvals(M)[rank:] ** 2))
