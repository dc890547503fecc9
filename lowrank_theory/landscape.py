"""Second-order landscape of the LoRA-ML objective: Hessians and curvature.

The checks of Theorem 4 (strict saddles for T = 2) and of the spurious local minima for T >= 3
(docs/theory.md, sections 6 and 7) need more than the gradient: the smallest eigenvalue of the Hessian at a
stationary point separates a saddle (negative curvature) from a local minimum. Everything here
is exact: the Hessian-vector product is derived in closed form from the per-task loss gradient
:func:`~lowrank_theory.losses.loss_gradient` and the adapter's chain rule, so no formula of the
loss is written twice.

Parameters are packed as one vector ``x = [vec(A), vec(U), (vec(V))]`` of length
``p = d^2 + n_factors * T * d * r`` (row-major ``ravel``), the same order as the gradient
``(gA, gU[, gV])`` of :func:`~lowrank_theory.lora_ml.lora_ml_gradient`; the packing, the point
validation and the gradient norm are the solvers' own (:mod:`lowrank_theory.lora_ml`).
Stationary points (Newton polishing, certificates, search) build on this module in
:mod:`lowrank_theory.stationary`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse.linalg
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._validation import as_seed_generator, check_array
from lowrank_theory.adapters import Adapter, Factors
from lowrank_theory.losses import Source, Statistics, loss_gradient, statistics
from lowrank_theory.objective import (
    check_point,
    lora_ml_gradient,
    lora_ml_objective,
    pack,
    unpack,
)

__all__ = [
    "Curvature",
    "lora_ml_hvp",
    "lora_ml_hessian",
    "symmetry_directions",
    "hessian_min_eigenvalue",
    "taylor_remainder_slopes",
    "remainder_slope",
    "CURVATURE_RTOL",
    "DENSE_MAX_PARAMETERS",
]

#: Curvature counts as negative (positive) when the smallest Hessian eigenvalue is below
#: ``-CURVATURE_RTOL * ||H||_2`` (above ``+...``). Dense eigenvalues are accurate to ~1e-15 ||H||
#: and a polished point sits ~1e-12 from the true stationary point, which moves eigenvalues by
#: the same order; 1e-6 is many orders above both.
CURVATURE_RTOL = 1e-6
#: Up to this many parameters the Hessian is formed densely (one batched product with the
#: identity); above it the smallest eigenvalue comes from Lanczos on Hessian-vector products.
DENSE_MAX_PARAMETERS = 800
#: Lanczos (ARPACK) relative accuracy of the smallest eigenvalue.
LANCZOS_TOL = 1e-10
#: Eigenpairs Lanczos computes (the smallest is kept); see :func:`_lanczos_min`.
LANCZOS_EIGENPAIRS = 6


# --------------------------------------------------------------------------- packing
def _pack_blocks(blocks: tuple[NDArray, ...]) -> NDArray[np.float64]:
    """Pack ``(A, *factors)`` blocks (a gradient or a Hessian-vector product) into one vector."""
    return pack(blocks[0], tuple(blocks[1:]))


def _unpack_point(x: NDArray, shape: tuple[int, int, int], n_factors: int):
    """``(A, factors)`` from a packed vector; ``shape`` is a factor's ``(T, d, r)``."""
    return unpack(x, shape[1], shape, n_factors, with_A=True)


@functools.lru_cache(maxsize=32)
def _coordinate_directions(shape: tuple[int, int, int], n_factors: int):
    """The ``p`` unit directions, unpacked and stacked: ``dA`` (p, d, d), factors (p, T, d, r).

    Cached (read-only arrays): the polisher asks for the same shape at every Newton step.
    """
    d = shape[1]
    p = d * d + n_factors * int(np.prod(shape))
    parts = [_unpack_point(e, shape, n_factors) for e in np.eye(p)]
    out = (np.stack([a for a, _ in parts]),
           *(np.stack([f[i] for _, f in parts]) for i in range(n_factors)))
    for arr in out:
        arr.flags.writeable = False
    return out[0], tuple(out[1:])


def _pack_columns(blocks: tuple[NDArray, ...]) -> NDArray[np.float64]:
    """Pack blocks with a leading batch axis of size m into the columns of a (p, m) matrix.

    Moving the batch axis last makes the solvers' ``pack`` (which ravels each block in
    row-major order) lay coordinate ``i`` of item ``j`` at ``i * m + j``.
    """
    m = blocks[0].shape[0]
    moved = [np.moveaxis(b, 0, -1) for b in blocks]
    return pack(moved[0], tuple(moved[1:])).reshape(-1, m)


# --------------------------------------------------------------------------- Hessian
def _hvp(
    stats: Statistics,
    adapter: Adapter,
    A: NDArray[np.float64],
    factors: Factors,
    dA: NDArray[np.float64],
    dfactors: Factors,
) -> tuple[NDArray[np.float64], ...]:
    """Hessian-vector products for a batch of directions ``dA`` (..., d, d), ``dfactors`` (..., T, d, r).

    With ``W_t = A + Delta_t(f)`` and ``G_t = dL_t/dW_t`` the gradient is
    ``(sum_t G_t, J_f(G))`` where ``J_f(G)`` is the adapter's chain rule, bilinear in ``(f, G)``.
    Differentiating along ``(dA, df)``:

        dW_t = dA + D Delta_t(f)[df],   dG_t = 2 dW_t Sxx_t,
        H[dA, df] = (sum_t dG_t,  J_f(dG) + J_df(G)).

    ``Delta`` is a homogeneous quadratic in the factors, so its derivative is the exact central
    difference ``(Delta(f + df) - Delta(f - df)) / 2``; ``G`` is affine in ``W``, so
    ``dG = loss_gradient(dW) - loss_gradient(0)`` exactly. Both reuse the core formulas.
    """
    W = A + adapter.delta(factors)
    G = loss_gradient(stats, W)
    G0 = loss_gradient(stats, np.zeros_like(W))
    plus = tuple(f + df for f, df in zip(factors, dfactors))
    minus = tuple(f - df for f, df in zip(factors, dfactors))
    d_delta = 0.5 * (adapter.delta(plus) - adapter.delta(minus))
    dW = dA[..., None, :, :] + d_delta
    dG = loss_gradient(stats, dW) - G0
    lead = dG.shape[:-3]
    fac_b = tuple(np.broadcast_to(f, (*lead, *f.shape)) for f in factors)
    first = adapter.factor_gradients(fac_b, dG)
    second = adapter.factor_gradients(dfactors, np.broadcast_to(G, (*lead, *G.shape)))
    return (dG.sum(axis=-3), *(a + b for a, b in zip(first, second)))


def lora_ml_hvp(
    source: Source,
    A: ArrayLike,
    U: ArrayLike,
    dA: ArrayLike,
    dU: ArrayLike,
    V: ArrayLike | None = None,
    dV: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], ...]:
    """Exact Hessian-vector product of the LoRA-ML objective.

    Parameters
    ----------
    source : TaskFamily or TaskData
        Population or sample (the objective of :func:`~lowrank_theory.lora_ml.lora_ml_objective`).
    A : array_like of shape (d, d)
        Base at which the Hessian is taken.
    U : array_like of shape (T, d, r)
        Adapter factors (``U_t U_t^T``, or ``U_t V_t^T`` when ``V`` is given).
    dA : array_like of shape (d, d)
        Direction in the base.
    dU : array_like of shape (T, d, r)
        Direction in ``U``.
    V, dV : array_like of shape (T, d, r), optional
        Right factors of an asymmetric adapter and the direction in them (both or neither).

    Returns
    -------
    tuple of ndarray
        ``(hA, hU)`` or ``(hA, hU, hV)``, the blocks of ``H @ [dA, dU(, dV)]``.

    Raises
    ------
    ValueError
        Wrong shapes, or only one of ``V``/``dV`` given.

    Notes
    -----
    For the symmetric adapter, with ``R_t``-free notation ``G_t = 2 (W_t Sxx_t - Syx_t)`` and
    ``dW_t = dA + dU_t U_t^T + U_t dU_t^T``::

        hA   = sum_t 2 dW_t Sxx_t
        hU_t = (dG_t + dG_t^T) U_t + (G_t + G_t^T) dU_t,   dG_t = 2 dW_t Sxx_t.

    The quadratic form is ``sum_t 2 tr(dW_t Sxx_t dW_t^T) + 2 <G_t, dU_t dU_t^T>``: the second
    term is the only source of negative curvature (docs/theory.md, section 7).

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=3, k=1, T=2, seed=0)
    >>> hA, hU = lora_ml_hvp(fam, fam.A_star, fam.U_star, np.eye(3), np.zeros((2, 3, 1)))
    >>> bool(np.allclose(hA, 2 * 2 * np.eye(3)))  # 2 tasks, each contributes 2 dA
    True
    """
    if (V is None) != (dV is None):
        raise ValueError("give both V and dV (asymmetric adapter) or neither (symmetric).")
    A, factors, adapter = check_point(source, A, U, V)
    dA = check_array(dA, "dA", A.shape)
    dfactors = (check_array(dU, "dU", factors[0].shape),)
    if V is not None:
        dfactors += (check_array(dV, "dV", factors[0].shape),)
    return _hvp(statistics(source), adapter, A, factors, dA, dfactors)


def _dense_hessian(
    stats: Statistics, adapter: Adapter, A: NDArray, factors: Factors
) -> NDArray[np.float64]:
    # H is linear in the direction, so all p columns come from one batched product with I.
    dA, dfac = _coordinate_directions(factors[0].shape, len(factors))
    H = _pack_columns(_hvp(stats, adapter, A, factors, dA, dfac))
    # Symmetrise away round-off (H is symmetric exactly).
    return 0.5 * (H + H.T)


def lora_ml_hessian(
    source: Source, A: ArrayLike, U: ArrayLike, V: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Dense Hessian of the LoRA-ML objective in packed coordinates ``[vec(A), vec(U), ...]``.

    Parameters
    ----------
    source : TaskFamily or TaskData
    A : array_like of shape (d, d)
    U : array_like of shape (T, d, r)
    V : array_like of shape (T, d, r), optional

    Returns
    -------
    ndarray of shape (p, p)
        Symmetric, ``p = d^2 + n_factors T d r``.

    Notes
    -----
    Column ``j`` is :func:`lora_ml_hvp` applied to the ``j``-th unit vector; all columns are
    computed in one broadcast call, costing ``O(p T d^3)``.
    """
    A, factors, adapter = check_point(source, A, U, V)
    return _dense_hessian(statistics(source), adapter, A, factors)


def symmetry_directions(A: ArrayLike, U: ArrayLike, V: ArrayLike | None = None) -> NDArray[np.float64]:
    """Orthonormal basis of the tangent space of the adapter's symmetry orbit at a point.

    The objective is constant along ``U_t -> U_t Q_t`` (``Q_t`` orthogonal; symmetric adapter)
    and along ``U_t -> U_t M_t, V_t -> V_t M_t^{-T}`` (``M_t`` invertible; asymmetric adapter),
    so the Hessian has zero eigenvalues in these directions at every point. Excluding them
    makes "positive definite modulo symmetry" a meaningful strict-minimum test.

    Parameters
    ----------
    A : array_like of shape (d, d)
    U : array_like of shape (T, d, r)
    V : array_like of shape (T, d, r), optional

    Returns
    -------
    ndarray of shape (p, q)
        Orthonormal columns in packed coordinates; ``q = 0`` for a symmetric rank-1 adapter.

    Notes
    -----
    Tangent vectors: ``dU_t = U_t S`` with ``S`` skew-symmetric (``r(r-1)/2`` per task), or
    ``(dU_t, dV_t) = (U_t X, -V_t X^T)`` for any ``X`` (``r^2`` per task). Directions that
    vanish (rank-deficient factors) are dropped by the rank-revealing orthonormalisation.
    """
    A = check_array(A, "A", (None, None))
    d = A.shape[0]
    U = check_array(U, "U", (None, d, None))
    factors = (U,) if V is None else (U, check_array(V, "V", U.shape))
    T, _, r = U.shape
    p = d * d + len(factors) * T * d * r
    cols = []
    for t in range(T):
        if V is None:
            gens = []
            for i in range(r):
                for j in range(i + 1, r):
                    S = np.zeros((r, r))
                    S[i, j], S[j, i] = 1.0, -1.0
                    gens.append(S)
        else:
            gens = [np.outer(np.eye(r)[i], np.eye(r)[j]) for i in range(r) for j in range(r)]
        for X in gens:
            dfac = [np.zeros_like(f) for f in factors]
            dfac[0][t] = factors[0][t] @ X
            if V is not None:
                dfac[1][t] = -factors[1][t] @ X.T
            cols.append(pack(np.zeros((d, d)), tuple(dfac)))
    if not cols:
        return np.zeros((p, 0))
    return scipy.linalg.orth(np.stack(cols, axis=1))


# --------------------------------------------------------------------------- curvature
@dataclass(frozen=True, eq=False)
class Curvature:
    """Smallest Hessian eigenvalue at a point.

    Attributes
    ----------
    min_eigenvalue : float
        Smallest eigenvalue of the Hessian (restricted to the complement of the symmetry
        directions when ``modulo_symmetry``).
    direction : ndarray of shape (p,)
        A unit eigenvector (packed coordinates).
    norm : float
        ``||H||_2`` (largest absolute eigenvalue), the scale for curvature tolerances.
    method : str
        ``"dense"`` or ``"lanczos"``.
    modulo_symmetry : bool
        Whether the symmetry directions were excluded.
    """

    min_eigenvalue: float
    direction: NDArray[np.float64]
    norm: float
    method: str
    modulo_symmetry: bool

    @property
    def relative(self) -> float:
        """``min_eigenvalue / ||H||_2`` (0 when the Hessian is zero)."""
        return 0.0 if self.norm == 0.0 else self.min_eigenvalue / self.norm


def hessian_min_eigenvalue(
    source: Source,
    A: ArrayLike,
    U: ArrayLike,
    V: ArrayLike | None = None,
    *,
    method: str = "auto",
    modulo_symmetry: bool = False,
    seed: int | np.random.Generator | None = 0,
) -> Curvature:
    """Smallest eigenvalue of the LoRA-ML Hessian, dense or by Lanczos.

    Parameters
    ----------
    source : TaskFamily or TaskData
    A : array_like of shape (d, d)
    U : array_like of shape (T, d, r)
    V : array_like of shape (T, d, r), optional
    method : {"auto", "dense", "lanczos"}, default="auto"
        ``"dense"``: form the Hessian and call ``numpy.linalg.eigh``. ``"lanczos"``:
        ``scipy.sparse.linalg.eigsh`` (``which="SA"``) on a ``LinearOperator`` of
        Hessian-vector products, never forming the matrix. ``"auto"``: dense up to
        ``DENSE_MAX_PARAMETERS`` parameters.
    modulo_symmetry : bool, default=False
        Exclude the directions of :func:`symmetry_directions` (dense only).
    seed : int, Generator or None, default=0
        Start vector of Lanczos.

    Returns
    -------
    Curvature

    Raises
    ------
    ValueError
        Unknown method, or ``modulo_symmetry`` with Lanczos.
    """
    if method not in ("auto", "dense", "lanczos"):
        raise ValueError(f"method must be 'auto', 'dense' or 'lanczos', got {method!r}.")
    A, factors, adapter = check_point(source, A, U, V)
    stats = statistics(source)
    T, d, r = factors[0].shape
    p = d * d + len(factors) * T * d * r
    if method == "auto":
        method = "dense" if p <= DENSE_MAX_PARAMETERS or modulo_symmetry else "lanczos"
    if method == "lanczos":
        if modulo_symmetry:
            raise ValueError("modulo_symmetry needs method='dense' (a projected operator is not built).")
        return _lanczos_min(stats, adapter, A, factors, p, as_seed_generator(seed))
    H = _dense_hessian(stats, adapter, A, factors)
    # Full divide-and-conquer eigendecomposition (LAPACK syevd): p <= DENSE_MAX_PARAMETERS makes
    # it cheap, and the subset driver (syevr) was seen to fail with "Internal Error" on a
    # 32 x 32 Hessian.
    lam, vec = np.linalg.eigh(H)
    norm = float(np.max(np.abs(lam))) if p else 0.0
    if modulo_symmetry:
        N = symmetry_directions(A, *factors)
        if N.shape[1]:
            # Orthonormal basis of the complement of the symmetry tangent space.
            Z = scipy.linalg.null_space(N.T)
            lam_z, vec_z = np.linalg.eigh(Z.T @ H @ Z)
            return Curvature(float(lam_z[0]), Z @ vec_z[:, 0], norm, "dense", True)
    return Curvature(float(lam[0]), vec[:, 0], norm, "dense", modulo_symmetry)


def _lanczos_min(
    stats: Statistics, adapter: Adapter, A: NDArray, factors: Factors, p: int,
    rng: np.random.Generator,
) -> Curvature:
    def matvec(x: NDArray) -> NDArray:
        x = np.asarray(x, dtype=np.float64).ravel()
        dA, dfac = _unpack_point(x, factors[0].shape, len(factors))
        return _pack_blocks(_hvp(stats, adapter, A, factors, dA, dfac))

    op = scipy.sparse.linalg.LinearOperator((p, p), matvec=matvec, dtype=np.float64)
    v0 = rng.standard_normal(p)
    # A few eigenpairs, not one: with a single wanted pair ARPACK can settle on the second
    # smallest eigenvalue when the smallest is multiple (symmetry directions give repeated zeros).
    n_eig = min(LANCZOS_EIGENPAIRS, p - 1)
    big = scipy.sparse.linalg.eigsh(op, k=n_eig, which="LM", v0=v0, tol=LANCZOS_TOL, return_eigenvectors=False)
    lam, vec = scipy.sparse.linalg.eigsh(op, k=n_eig, which="SA", v0=v0, tol=LANCZOS_TOL)
    i = int(np.argmin(lam))
    return Curvature(float(lam[i]), vec[:, i], float(np.max(np.abs(big))), "lanczos", False)


def taylor_remainder_slopes(
    source: Source,
    A: ArrayLike,
    U: ArrayLike,
    V: ArrayLike | None = None,
    *,
    seed: int | np.random.Generator | None = 0,
    steps: ArrayLike | None = None,
    hvp: Callable[..., tuple[NDArray[np.float64], ...]] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Taylor-remainder test of the gradient and the Hessian (pymanopt's ``check_gradient`` idea).

    Along a random unit direction ``v`` and steps ``h``:

    Along a line the objective is a quartic polynomial ``f0 + a1 h + a2 h^2 + a3 h^3 + a4 h^4``
    (``a4 = sum_t ||Delta(v) Sxx_t^{1/2}||_F^2 > 0``). One-sided remainders mix two powers of
    ``h`` that can cancel at some step and bend the slope; symmetrised ones keep one power:

    - first order: ``e1(h) = |F(x + h v) - F(x - h v) - 2 h <g, v>| = 2 |a3| h^3`` when the
      gradient is right (slope 3); a wrong gradient leaves ``e1 ~ h`` (slope 1);
    - second order: ``e2(h) = |F(x + h v) + F(x - h v) - 2 F(x) - h^2 <v, H v>| = 2 a4 h^4``
      when the Hessian is right (slope 4); a wrong one leaves ``e2 ~ h^2`` (slope 2).

    Parameters
    ----------
    source : TaskFamily or TaskData
    A, U, V : array_like
        The point.
    seed : int, Generator or None, default=0
        Source of the direction.
    steps : array_like, optional
        Step sizes ``h`` (default ``logspace(-3, -1, 9)`` times the point's scale).
    hvp : callable, optional
        The Hessian-vector product under test, with the signature of :func:`lora_ml_hvp`
        (the default). A deliberately wrong one is how the test is shown to fail.

    Returns
    -------
    steps : ndarray of shape (m,)
    e1, e2 : ndarray of shape (m,)
        Symmetrised first- and second-order remainders (expected slopes 3 and 4; see
        :func:`remainder_slope`).

    Notes
    -----
    The objective is evaluated with :func:`~lowrank_theory.lora_ml.lora_ml_objective` and the
    gradient with :func:`~lowrank_theory.lora_ml.lora_ml_gradient`, independently of the
    Hessian-vector product under test.
    """
    A, factors, _ = check_point(source, A, U, V)
    hvp = lora_ml_hvp if hvp is None else hvp
    rng = as_seed_generator(seed)
    x = pack(A, factors)
    v = rng.standard_normal(x.size)
    v /= np.linalg.norm(v)
    scale = max(1.0, float(np.linalg.norm(x)) / np.sqrt(x.size))
    h = scale * np.logspace(-3, -1, 9) if steps is None else check_array(steps, "steps", (None,))
    shape, n_f = factors[0].shape, len(factors)

    def f(z: NDArray) -> float:
        A_, fac = _unpack_point(z, shape, n_f)
        return lora_ml_objective(source, A_, *fac)

    f0 = f(x)
    g = _grad_vector(source, A, factors)
    dA, dfac = _unpack_point(v, shape, n_f)
    # hvp(source, A, U, dA, dU[, V, dV]): the factor and its direction interleave.
    pairs = [arr for pair in zip(factors, dfac) for arr in pair]
    Hv = _pack_blocks(hvp(source, A, pairs[0], dA, pairs[1], *pairs[2:]))
    gv, vHv = float(g @ v), float(v @ Hv)
    e1 = np.array([abs(f(x + s * v) - f(x - s * v) - 2.0 * s * gv) for s in h])
    e2 = np.array([abs(f(x + s * v) + f(x - s * v) - 2.0 * f0 - s * s * vHv) for s in h])
    return h, e1, e2


def remainder_slope(steps: ArrayLike, remainders: ArrayLike) -> float:
    """Robust log-log slope of a Taylor remainder: the median of consecutive slopes.

    Along a line the objective is a quartic polynomial, so the second-order remainder is
    ``c3 h^3 + c4 h^4``; when ``c3`` and ``c4`` have opposite signs it vanishes at
    ``h = -c3 / c4``, and one dip would bend a least-squares fit. A dip spoils two consecutive
    slopes only, so their median stays at the asymptotic order.

    Parameters
    ----------
    steps, remainders : array_like of shape (m,)
        ``h`` (increasing) and ``e(h) > 0``.

    Returns
    -------
    float
    """
    h = np.log(check_array(steps, "steps", (None,)))
    e = np.log(np.maximum(check_array(remainders, "remainders", h.shape), np.finfo(float).tiny))
    return float(np.median(np.diff(e) / np.diff(h)))

def _grad_vector(source: Source, A: NDArray, factors: Factors) -> NDArray:
    return _pack_blocks(lora_ml_gradient(source, A, *factors))
