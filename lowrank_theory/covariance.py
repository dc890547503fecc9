"""Square roots of covariance matrices: the weights of every population loss.

A population loss is a weighted Frobenius norm, ``L(W) - L(W*) = ||(W - W*) Sigma^{1/2}||_F^2``,
and a sample loss has the same form with ``Sxx`` in place of ``Sigma``. Whitening by the root,
``M -> M Sigma^{1/2}``, turns it into a plain Frobenius norm, where Eckart-Young applies. This
module is the one place the root is computed, for one covariance of shape (d, d) or a stack of
shape (T, d, d) alike.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["covariance_sqrt", "whiten", "PINV_RTOL_PER_DIM"]

#: An eigenvalue at most ``PINV_RTOL_PER_DIM * d`` times the largest counts as zero in the
#: pseudo-inverse root: ``d`` times machine epsilon is the round-off of an eigenvalue of a
#: d x d symmetric matrix relative to its norm (numpy's ``matrix_rank`` rule).
PINV_RTOL_PER_DIM = float(np.finfo(np.float64).eps)


def covariance_sqrt(S: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Symmetric square root of PSD matrices and its pseudo-inverse.

    Parameters
    ----------
    S : array_like of shape (..., d, d)
        Symmetric positive semi-definite matrices: one covariance (d, d), or one per task
        (T, d, d). Not validated: callers pass validated covariances or second moments.

    Returns
    -------
    root : ndarray of shape (..., d, d)
        ``S^{1/2} = V diag(sqrt(lambda)) V^T``, with ``S = V diag(lambda) V^T``; negative
        round-off eigenvalues count as zero.
    inv_root : ndarray of shape (..., d, d)
        The pseudo-inverse ``(S^{1/2})^+ = V diag(1/sqrt(lambda_i) if lambda_i > tol else 0) V^T``
        with ``tol = PINV_RTOL_PER_DIM * d * max(lambda)``: the inverse root of a positive
        definite ``S``, and for a singular sample design the inverse on its range.

    Notes
    -----
    ``root @ root = S`` and ``root @ inv_root`` is the orthogonal projector onto the range of
    ``S``, so ``S^+ = inv_root @ inv_root``.

    Examples
    --------
    >>> import numpy as np
    >>> root, inv_root = covariance_sqrt(np.diag([4.0, 9.0, 0.0]))
    >>> np.diag(root), np.diag(inv_root)
    (array([2., 3., 0.]), array([0.5       , 0.33333333, 0.        ]))
    >>> covariance_sqrt(np.stack([np.eye(2), 4 * np.eye(2)]))[0][:, 0, 0]
    array([1., 2.])
    """
    S = np.asarray(S, dtype=np.float64)
    # numpy's eigh batches over leading axes (scipy.linalg.eigh does not).
    lam, vec = np.linalg.eigh(S)
    lam = np.clip(lam, 0.0, None)
    keep = lam > PINV_RTOL_PER_DIM * S.shape[-1] * lam[..., -1:]
    sqrt_lam = np.sqrt(lam)
    inv_sqrt = np.divide(1.0, sqrt_lam, out=np.zeros_like(lam), where=keep)
    vec_t = np.swapaxes(vec, -1, -2)
    return (vec * sqrt_lam[..., None, :]) @ vec_t, (vec * inv_sqrt[..., None, :]) @ vec_t


def whiten(M: ArrayLike, S: ArrayLike | None) -> NDArray[np.float64]:
    """``M S^{1/2}``: the matrix whose Frobenius norm is the ``S``-weighted norm of ``M``.

    Parameters
    ----------
    M : array_like of shape (..., d, d)
    S : array_like of shape (..., d, d), or None
        Covariance(s); None is the identity (``M`` is returned as a float array).

    Returns
    -------
    ndarray of shape (..., d, d)
        ``||M S^{1/2}||_F^2 = tr(M S M^T)``.

    Examples
    --------
    >>> import numpy as np
    >>> M, S = np.array([[1.0, 2.0], [0.0, 1.0]]), np.array([[2.0, 0.5], [0.5, 1.0]])
    >>> bool(np.isclose(np.sum(whiten(M, S) ** 2), np.trace(M @ S @ M.T)))
    True
    """
    M = np.asarray(M, dtype=np.float64)
    if S is None:
        return M
    return M @ covariance_sqrt(S)[0]
