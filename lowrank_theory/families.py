"""Constructions of task families: the random draws behind ``TaskFamily``'s constructors.

Each function draws the arrays of one kind of ground truth (the base ``A*`` and the offset
factors ``U*``), or of a sample of it, from a seed; :class:`lowrank_theory.tasks.TaskFamily`
wraps them (``TaskFamily.random(...)`` is ``TaskFamily(*draw_random(...), sigma, Sigma)``) and
validates the result. Every function bounds its allocation by ``max_bytes`` before drawing.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._validation import (
    MAX_BYTES,
    as_seed_generator,
    check_allocation,
    check_array,
    check_float,
    check_int,
)

__all__ = [
    "random_symmetric",
    "random_orthonormal",
    "draw_random",
    "draw_orthonormal",
    "draw_collinear",
    "draw_from_spectrum",
    "draw_offset",
    "draw_sample",
]

Seed = int | np.random.Generator | None
Arrays = tuple[NDArray[np.float64], NDArray[np.float64]]


def _dimensions(d: int, k: int, T: int, max_bytes: int | None, what: str) -> tuple[int, int, int]:
    d = check_int(d, "d")
    k = check_int(k, "k", maximum=d)
    T = check_int(T, "T")
    # A*, one d x d draw used to build it (or a basis), and the T offset factors.
    check_allocation(8.0 * (3 * d * d + 2 * T * d * k), f"{what}(d={d}, k={k}, T={T})", max_bytes)
    return d, k, T


def random_symmetric(d: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """The paper's base: ``(G + G^T) / 2`` with ``G`` a (d, d) standard normal matrix.

    Examples
    --------
    >>> import numpy as np
    >>> A = random_symmetric(3, np.random.default_rng(0))
    >>> bool(np.array_equal(A, A.T))
    True
    """
    G = rng.standard_normal((d, d))
    return (G + G.T) / 2.0


def random_orthonormal(d: int, m: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """A Haar-distributed (d, m) matrix with orthonormal columns.

    QR of a Gaussian matrix, with the signs of ``R``'s diagonal moved into ``Q`` so that the
    distribution is Haar on the Stiefel manifold.

    Examples
    --------
    >>> import numpy as np
    >>> Q = random_orthonormal(5, 2, np.random.default_rng(0))
    >>> bool(np.allclose(Q.T @ Q, np.eye(2)))
    True
    """
    Q, R = np.linalg.qr(rng.standard_normal((d, m)))
    return Q * np.sign(np.where(np.diag(R) == 0, 1.0, np.diag(R)))


def draw_random(d: int, k: int, T: int, seed: Seed = None,
                max_bytes: int | None = MAX_BYTES) -> Arrays:
    """The paper's random family: ``A* = (G + G^T)/2``, ``U*_t`` with i.i.d. ``N(0, 1)`` entries.

    Parameters
    ----------
    d, k, T : int
        Dimension, offset rank (``1 <= k <= d``) and number of tasks (``T >= 1``).
    seed : int, Generator or None
        Source of randomness.
    max_bytes : int or None, default=MAX_BYTES
        Refuse to allocate more than this many bytes (2 GiB); None lifts the limit.

    Returns
    -------
    A_star : ndarray of shape (d, d)
    U_star : ndarray of shape (T, d, k)

    Examples
    --------
    >>> A, U = draw_random(4, 1, 3, seed=0)
    >>> A.shape, U.shape
    ((4, 4), (3, 4, 1))
    """
    d, k, T = _dimensions(d, k, T, max_bytes, "TaskFamily.random")
    rng = as_seed_generator(seed)
    A = random_symmetric(d, rng)
    return A, rng.standard_normal((T, d, k))


def draw_orthonormal(d: int, k: int, T: int, scale: float = 1.0, seed: Seed = None,
                     max_bytes: int | None = MAX_BYTES) -> Arrays:
    """A family whose kT offset columns are orthonormal (``kT <= d``), scaled by ``scale``.

    The offsets ``U*_t U*_t^T = scale^2 P_t`` are orthogonal projections onto orthogonal
    subspaces: linearly independent, the best-conditioned case of Theorem 3.

    Returns
    -------
    A_star : ndarray of shape (d, d)
    U_star : ndarray of shape (T, d, k)

    Examples
    --------
    >>> import numpy as np
    >>> _, U = draw_orthonormal(6, 2, 3, scale=2.0, seed=0)
    >>> C = U.transpose(1, 0, 2).reshape(6, 6)
    >>> bool(np.allclose(C.T @ C, 4 * np.eye(6)))
    True
    """
    d, k, T = _dimensions(d, k, T, max_bytes, "TaskFamily.orthonormal")
    if k * T > d:
        raise ValueError(f"orthonormal offsets need k*T <= d, got k*T={k * T} > d={d}.")
    scale = check_float(scale, "scale", strict=True)
    rng = as_seed_generator(seed)
    A = random_symmetric(d, rng)
    Q = random_orthonormal(d, k * T, rng)
    return A, scale * Q.T.reshape(T, k, d).transpose(0, 2, 1)


def draw_collinear(d: int, k: int, T: int, seed: Seed = None,
                   max_bytes: int | None = MAX_BYTES) -> Arrays:
    """A family whose offsets all share one k-dimensional column space.

    ``U*_t = Q R_t`` with one orthonormal ``Q`` (d, k) and random ``R_t`` (k, k). The kT
    offset columns span only k dimensions, so for ``T > 1`` they are not linearly independent;
    for ``T > k(k+1)/2`` even the offset matrices are linearly dependent. A counterexample
    family for recovery.

    Returns
    -------
    A_star : ndarray of shape (d, d)
    U_star : ndarray of shape (T, d, k)

    Examples
    --------
    >>> import numpy as np
    >>> _, U = draw_collinear(5, 1, 3, seed=0)
    >>> int(np.linalg.matrix_rank(U[:, :, 0]))
    1
    """
    d, k, T = _dimensions(d, k, T, max_bytes, "TaskFamily.collinear")
    rng = as_seed_generator(seed)
    A = random_symmetric(d, rng)
    Q = random_orthonormal(d, k, rng)
    return A, Q[None, :, :] @ rng.standard_normal((T, k, k))


def draw_from_spectrum(offset_spectrum: ArrayLike, d: int, base_spectrum: ArrayLike | None = None,
                       seed: Seed = None, max_bytes: int | None = MAX_BYTES) -> Arrays:
    """A family with chosen offset eigenvalues (and optionally a chosen base spectrum).

    Parameters
    ----------
    offset_spectrum : array_like of shape (T, k)
        Positive eigenvalues of each ``U*_t U*_t^T``; ``U*_t = Q_t diag(sqrt(lambda_t))``
        with a random orthonormal ``Q_t`` (d, k).
    d : int
        Dimension.
    base_spectrum : array_like of shape (d,), optional
        Eigenvalues of the symmetric base ``A* = O diag(base) O^T``; random if None.
    seed : int, Generator or None
    max_bytes : int or None, default=MAX_BYTES

    Returns
    -------
    A_star : ndarray of shape (d, d)
    U_star : ndarray of shape (T, d, k)

    Examples
    --------
    >>> import numpy as np
    >>> A, U = draw_from_spectrum([[4.0], [1.0]], d=3, base_spectrum=[1.0, 2.0, 3.0], seed=0)
    >>> np.round(np.linalg.eigvalsh(A), 12), np.round(np.sum(U**2, axis=(1, 2)), 12)
    (array([1., 2., 3.]), array([4., 1.]))
    """
    d = check_int(d, "d")
    spec = check_array(offset_spectrum, "offset_spectrum", (None, None))
    T, k = spec.shape
    if T < 1 or not 1 <= k <= d:
        raise ValueError(f"offset_spectrum must have shape (T>=1, k<=d={d}), got {spec.shape}.")
    _dimensions(d, k, T, max_bytes, "TaskFamily.from_spectrum")
    if np.any(spec <= 0):
        raise ValueError("offset_spectrum must be strictly positive (rank-k offsets).")
    rng = as_seed_generator(seed)
    if base_spectrum is None:
        A = random_symmetric(d, rng)
    else:
        base = check_array(base_spectrum, "base_spectrum", (d,))
        O = random_orthonormal(d, d, rng)
        A = (O * base) @ O.T
    U = np.stack([random_orthonormal(d, k, rng) * np.sqrt(spec[t]) for t in range(T)])
    return A, U


def draw_offset(d: int, k: int, seed: Seed = None, U: ArrayLike | None = None,
                family_k: int | None = None) -> NDArray[np.float64]:
    """The offset factor of a new task: ``U`` checked, or i.i.d. ``N(0, 1)`` entries.

    Parameters
    ----------
    d, k : int
        Dimension and the new task's rank.
    seed : int, Generator or None
        Source of a random factor (unused when ``U`` is given).
    U : array_like of shape (d, k), optional
        The factor to use.
    family_k : int, optional
        The family's rank when ``k`` was not asked for (for the message of a mismatched ``U``).

    Returns
    -------
    ndarray of shape (1, d, k)

    Examples
    --------
    >>> draw_offset(4, 2, seed=0).shape
    (1, 4, 2)
    """
    if U is None:
        return as_seed_generator(seed).standard_normal((1, d, k))
    U_new = check_array(U, "U", (d, None))[None]
    if U_new.shape[2] != k:
        whose = " (the family's)" if family_k is not None else ""
        raise ValueError(
            f"U has {U_new.shape[2]} columns, but the new task's rank is k={k}{whose}; "
            f"pass U of shape ({d}, {k}), or k={U_new.shape[2]} to give the new "
            f"task rank {U_new.shape[2]}."
        )
    return U_new


def draw_sample(W_star: NDArray[np.float64], covariances: NDArray[np.float64] | None,
                sigma: float, n: int, seed: Seed = None,
                max_bytes: int | None = MAX_BYTES) -> Arrays:
    """``n`` i.i.d. samples of every task: ``x ~ N(0, Sigma_t)``, ``y = W*_t x + sigma eps``.

    Parameters
    ----------
    W_star : ndarray of shape (T, d, d)
        Task parameters.
    covariances : ndarray of shape (T, d, d), or None
        Input covariance of each task (None: the identity).
    sigma : float
        Noise standard deviation.
    n : int
        Samples per task (``n >= 1``).
    seed : int, Generator or None
        Source of randomness: inputs first, then noise.
    max_bytes : int or None, default=MAX_BYTES
        Refuse to allocate more than this many bytes (inputs, outputs and noise, 2 GiB by
        default); None lifts the limit.

    Returns
    -------
    X, Y : ndarray of shape (T, n, d)
        With ``Y[t] = X[t] W*_t^T + sigma * noise``.

    Examples
    --------
    >>> import numpy as np
    >>> X, Y = draw_sample(np.eye(2)[None], None, 0.0, n=5, seed=0)
    >>> bool(np.array_equal(X, Y)), X.shape
    (True, (1, 5, 2))
    """
    n = check_int(n, "n")
    T, d = W_star.shape[0], W_star.shape[-1]
    check_allocation(8.0 * (3 * T * n * d + T * d * d),
                     f"sample(n={n}) of a family with T={T}, d={d}", max_bytes)
    rng = as_seed_generator(seed)
    X = rng.standard_normal((T, n, d))
    if covariances is not None:
        # x = L z with Sigma = L L^T gives Cov(x) = Sigma; rows are x^T = z^T L^T.
        L = np.linalg.cholesky(covariances)
        X = X @ np.swapaxes(L, 1, 2)
    noise = rng.standard_normal((T, n, d))
    Y = X @ np.swapaxes(W_star, 1, 2) + sigma * noise
    return X, Y
