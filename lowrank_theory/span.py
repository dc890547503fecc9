"""The population problem of identity input covariance, solved in the span of the offsets.

Let ``Q`` (d, m) be an orthonormal basis of a space holding all offset factors,
``m = min(d, kT)``, and ``u_t = Q^T U*_t`` (m, k). With ``A = A* + Q b Q^T`` and
``Delta_t = Q v_t v_t^T Q^T`` the excess LoRA-ML objective is

    F = sum_t ||u_t u_t^T - b - v_t v_t^T||_F^2,

a problem on ``m x m`` matrices (``Q`` has orthonormal columns). Alternating minimisation from
the standard-retraining base never leaves this span (the argument is in :func:`fit_exact_span`),
so its iterates are exactly those of the full-space iteration. Its two steps are

    U-step:  v_t v_t^T = best PSD rank-r approximation of  S_t = u_t u_t^T - b,
    A-step:  b = (1/T) sum_t (u_t u_t^T - v_t v_t^T).

The method :func:`fit_exact_span` (``fit_lora_ml``'s default for such populations) runs
:func:`alternating_warm` or :func:`alternating_dense`, then L-BFGS if alternation slows.
:func:`alternating_warm` takes the U-step's top ``r`` eigenpairs of every ``S_t`` from
:func:`~lowrank_theory.eigen.top_eigenpairs`, warm-started from the previous iteration's
eigenvectors, and never forms a ``T x m x m`` array; :func:`alternating_dense` takes them from
full eigendecompositions (the reference, and the path of asymmetric adapters).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lowrank_theory._threads import blas_threads_for
from lowrank_theory._validation import check_choice
from lowrank_theory.adapters import Adapter, Factors
from lowrank_theory.eigen import EIGEN_RTOL, top_eigenpairs
from lowrank_theory.lbfgs import (
    LBFGS_MAX_ITER,
    objective_target,
    variable_projection,
)
from lowrank_theory.lora_ml_result import LoRAMLResult, check_problem, make_result
from lowrank_theory.losses import Statistics
from lowrank_theory.objective import relative_stationarity, summed_objective
from lowrank_theory.retraining import BaseStep
from lowrank_theory.tasks import TaskFamily

__all__ = [
    "fit_exact_span",
    "SpanRun",
    "offset_subspace",
    "reduced_offsets",
    "reduced_statistics",
    "alternating_dense",
    "alternating_warm",
    "warm_block_size",
    "span_stationarity",
    "ALTERNATING_SLOW_RATIO",
    "ALTERNATING_MAX_ITER",
    "EIGENSOLVERS",
]

#: Alternating minimisation stops once an iteration shrinks the objective by less than this
#: factor (its rate is linear; the caller's L-BFGS finishes faster from there).
ALTERNATING_SLOW_RATIO = 0.5
#: Largest number of alternating iterations.
ALTERNATING_MAX_ITER = 200
#: U-steps of :func:`fit_exact_span`: warm-started top eigenpairs, or full eigendecompositions.
EIGENSOLVERS = ("warm", "full")
#: The objective is summed from small per-task pieces while it stays above this multiple of
#: their round-off (machine epsilon times the pieces' size); below, it is recomputed from the
#: explicit residuals, which keep full relative precision down to zero.
CANCELLATION_MARGIN = 1e6
#: The warm U-step solves its eigenpairs to a residual of ``INEXACT_FACTOR * sqrt(F / F_0)``
#: relative (``F`` the last objective, ``F_0 = sum_t ||u_t u_t^T||^2``), between
#: :data:`~lowrank_theory.eigen.EIGEN_RTOL` and ``INEXACT_MAX``: an eigenvector error ``e``
#: changes the objective by about ``e^2 F_0``, so this keeps each step's change below ``1e-4 F``
#: and the iteration's rate intact, while early iterations, far from the answer, are not
#: solved to round-off (at d = 2000, k = 8, T = 40: 24 block products instead of 37).
INEXACT_FACTOR = 1e-2
INEXACT_MAX = 1e-3
#: Largest chunk of explicit ``m x m`` residuals held at once (elements): 32 MiB.
RESIDUAL_CHUNK = 2**22


@dataclass(frozen=True, eq=False)
class SpanRun:
    """An alternating run in the offsets' span.

    Attributes
    ----------
    b : ndarray of shape (m, m)
        The base's change, ``A = A* + Q b Q^T``.
    factors : tuple of ndarray of shape (T, m, r)
        Reduced adapter factors.
    history : list of float
        Objective at the start and after each iteration.
    n_iter : int
        Iterations done.
    b_next : ndarray of shape (m, m) or None
        The A-step from the final factors, which :func:`span_stationarity` needs (warm runs;
        None for dense ones, whose statistics give the stationarity).
    eigen_iterations : int
        Basis expansions of the warm eigensolver, summed over iterations (0 for dense runs).
    """

    b: NDArray[np.float64]
    factors: Factors
    history: list[float]
    n_iter: int
    b_next: NDArray[np.float64] | None = None
    eigen_iterations: int = 0


def offset_subspace(fam: TaskFamily) -> NDArray[np.float64]:
    """Orthonormal basis ``Q`` of a space holding all offset factors, shape (d, m), m = min(d, kT).

    The Q factor of the (d, kT) matrix of all columns ``[U*_1 ... U*_T]``. When the columns
    are dependent (collinear offsets) it also holds round-off directions: the span argument
    needs ``span(Q)`` to contain the offsets, not to equal their span, and a rank-revealing
    factorisation (pivoted QR, SVD) costs two to four times as much (level-2 BLAS).

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=8, k=2, T=3, seed=0)
    >>> Q = offset_subspace(fam)
    >>> Q.shape, bool(np.allclose(Q @ Q.T @ fam.U_star, fam.U_star))
    ((8, 6), True)
    """
    return np.linalg.qr(np.concatenate(list(fam.U_star), axis=1))[0]


def reduced_offsets(fam: TaskFamily, Q: NDArray[np.float64]) -> NDArray[np.float64]:
    """The offset factors in the basis ``Q``: ``u_t = Q^T U*_t``, shape (T, m, k)."""
    return _tasks_times(Q.T, fam.U_star)


def reduced_statistics(u: NDArray[np.float64]) -> Statistics:
    """Population statistics of the reduced problem (``A*`` removed, identity inputs).

    Parameters
    ----------
    u : ndarray of shape (T, m, k)

    Returns
    -------
    Statistics
        ``Sxx = I``, ``Sxy = W* = u_t u_t^T`` (dense, shape (T, m, m)), noise-free.

    Examples
    --------
    >>> import numpy as np
    >>> stats = reduced_statistics(np.ones((2, 3, 1)))
    >>> stats.Sxy.shape, float(stats.syy[0])
    ((2, 3, 3), 9.0)
    """
    D = u @ np.swapaxes(u, 1, 2)
    syy = np.einsum("tij,tij->t", D, D)
    return Statistics(np.broadcast_to(np.eye(u.shape[1]), D.shape), D, syy, 0.0, True, D, True)


def alternating_dense(stats: Statistics, adapter: Adapter, max_iter: int, ftol: float) -> SpanRun:
    """Alternating minimisation with closed-form steps on dense statistics of identity inputs.

    The U-step is ``adapter.project(W*_t - b)`` (a full eigendecomposition or SVD per task),
    the A-step the base's normal equations (:class:`~lowrank_theory.retraining.BaseStep`),
    from the standard-retraining base. Each step is an exact minimisation, so the objective
    never increases. Stops at ``max_iter`` iterations, an objective at most ``ftol``, or an
    iteration that shrinks it by less than :data:`ALTERNATING_SLOW_RATIO`.
    """
    base = BaseStep(stats)
    b = base()
    factors = adapter.project(stats.Syx - b)
    history = [summed_objective(stats, b, adapter.delta(factors))]
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        b = base(adapter.delta(factors))
        factors = adapter.project(stats.Syx - b)
        history.append(summed_objective(stats, b, adapter.delta(factors)))
        if history[-1] <= ftol or history[-1] > ALTERNATING_SLOW_RATIO * history[-2]:
            break
    return SpanRun(b, factors, history, it)


# --------------------------------------------------------------------------- warm path
def _swap(M: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.swapaxes(M, -1, -2)


def _tasks_times(M: NDArray[np.float64], X: NDArray[np.float64]) -> NDArray[np.float64]:
    """``M X_t`` for every task as one matrix product, X of shape (n, m, q) -> (n, M.rows, q)."""
    n, m, q = X.shape
    out = M @ np.swapaxes(X, 0, 1).reshape(m, n * q)
    return out.reshape(M.shape[0], n, q).swapaxes(0, 1)


def _factors(values: NDArray[np.float64], vectors: NDArray[np.float64], r: int) -> NDArray:
    """``v_t = X_r sqrt(max(theta_r, 0))``: the best PSD rank-r part of ``S_t``."""
    return vectors[..., :r] * np.sqrt(np.clip(values[..., :r], 0.0, None))[..., None, :]


def _base_change(C: NDArray[np.float64], V: NDArray[np.float64]) -> NDArray[np.float64]:
    """The A-step ``b = C - (1/T) sum_t v_t v_t^T`` with ``C = (1/T) sum_t u_t u_t^T``."""
    T, m, r = V.shape
    Vc = np.swapaxes(V, 0, 1).reshape(m, T * r)
    return C - (Vc @ Vc.T) / T


def _explicit_objective(u: NDArray, V: NDArray, b: NDArray) -> float:
    """``sum_t ||u_t u_t^T - v_t v_t^T - b||^2`` from the explicit residuals, chunk by chunk."""
    T, m, _ = u.shape
    left = np.concatenate([u, V], axis=-1)
    right = np.concatenate([u, -V], axis=-1)
    chunk = max(1, RESIDUAL_CHUNK // (m * m))
    total = 0.0
    for s in range(0, T, chunk):
        R = left[s : s + chunk] @ _swap(right[s : s + chunk])
        R -= b
        total += float(np.einsum("tij,tij->", R, R))
    return total


def _objective(u: NDArray, V: NDArray, b: NDArray, b_next: NDArray) -> float:
    """The objective at ``(b, v)``, with ``b_next`` the A-step from ``v``.

    ``E_t = u_t u_t^T - v_t v_t^T`` has rank at most ``k + r``: in an orthonormal basis
    ``B_t`` of ``[u_t, v_t]`` it is the small ``e_t``, whose entries carry the same absolute
    round-off as the explicit residual's. Since ``b_next`` is the mean of the ``E_t``,

        sum_t ||E_t - b||^2 = sum_t ||e_t||^2 - T ||b_next||^2 + T ||b_next - b||^2,

    at ``O(T m (k + r)^2 + m^2)`` cost. The difference loses digits when the objective is far
    below ``T ||b_next||^2`` (a base that stays away from ``A*``); there the explicit residuals
    are summed instead.
    """
    T = u.shape[0]
    B = np.linalg.qr(np.concatenate([u, V], axis=-1))[0]
    bu, bv = _swap(B) @ u, _swap(B) @ V
    e = bu @ _swap(bu) - bv @ _swap(bv)
    spread, mean = float(np.sum(e * e)), T * float(np.sum(b_next * b_next))
    f = spread - mean + T * float(np.sum((b_next - b) ** 2))
    if f > CANCELLATION_MARGIN * np.finfo(np.float64).eps * (spread + mean):
        return f
    return _explicit_objective(u, V, b)


def span_stationarity(u: NDArray, V: NDArray, b: NDArray, b_next: NDArray) -> tuple[float, float]:
    """Gradient norm and relative stationarity of the reduced problem at ``(b, v)``.

    The quantities of :func:`~lowrank_theory.objective.stationarity`, from ``m x (k + r)``
    pieces instead of ``T x m x m`` arrays. ``b_next`` is the A-step from ``v``. With
    ``R_t = u_t u_t^T - v_t v_t^T - b`` (identity inputs: ``G_t = -2 R_t``): the base's
    gradient is ``sum_t G_t = -2 T (b_next - b)``, each factor's ``(G_t + G_t^T) v_t =
    -4 R_t v_t``; the terms are ``W_t = b + v_t v_t^T`` and ``Syx_t = u_t u_t^T``.
    """
    T = u.shape[0]
    RV = u @ (_swap(u) @ V) - V @ (_swap(V) @ V) - _tasks_times(b, V)
    grad_norm = float(np.sqrt(4 * T**2 * np.sum((b_next - b) ** 2) + 16 * np.sum(RV * RV)))
    VtV = _swap(V) @ V
    W_sq = T * np.sum(b * b) + 2 * np.sum(V * _tasks_times(b, V)) + np.sum(VtV * VtV)
    uTu = _swap(u) @ u
    terms = float(np.sqrt(max(W_sq, 0.0) + np.sum(uTu * uTu)))
    return grad_norm, relative_stationarity(grad_norm, terms, float(np.sqrt(np.sum(V * V))))


def _start_basis(u: NDArray, b: NDArray, p: int) -> NDArray[np.float64]:
    """A deterministic start: the block Krylov basis ``[u_t, S_t u_t, S_t^2 u_t, ...]``."""
    blocks, block = [u], u
    while sum(x.shape[-1] for x in blocks) < p:
        block = u @ (_swap(u) @ block) - _tasks_times(b, block)
        blocks.append(block)
    return np.linalg.qr(np.concatenate(blocks, axis=-1)[..., :p])[0]


def warm_block_size(rank: int, m: int) -> int | None:
    """Columns per task of the warm eigensolver, or None when the span is too small for it.

    ``p = r + max(2, r // 2)``: the buffer beyond ``r`` keeps the convergence rate good when
    eigenvalue ``r`` is close to the next. The expansion doubles the basis to ``2p``
    orthonormal columns (so ``2p <= m`` is needed), and below ``m = 4p`` full
    eigendecompositions are as fast: with one BLAS thread, warm against full took 0.024 s
    against 0.011 s at m = 20 (r = 4, p = 6), 0.027 s against 0.045 s at m = 40, and
    0.037 s against 0.32 s at m = 80 (d = 400, best of 5).

    Examples
    --------
    >>> warm_block_size(8, 320), warm_block_size(2, 12), warm_block_size(2, 16)
    (12, None, 4)
    """
    p = rank + max(2, rank // 2)
    return p if 4 * p <= m else None


def alternating_warm(u: NDArray[np.float64], rank: int, max_iter: int, ftol: float) -> SpanRun:
    """Alternating minimisation (symmetric adapter) with warm-started top eigenpairs.

    Parameters
    ----------
    u : ndarray of shape (T, m, k)
        Reduced offset factors (:func:`reduced_offsets`).
    rank : int
        Adapter rank ``r``, with :func:`warm_block_size` not None.
    max_iter : int
        Largest number of iterations.
    ftol : float
        Stop once the objective is at most this.

    Returns
    -------
    SpanRun
        With ``b_next``, for :func:`span_stationarity`.

    Notes
    -----
    The steps and the stopping rule are those of :func:`alternating_dense`; only the U-step's
    eigenpairs are computed differently, to a tolerance that tightens with the objective
    (:data:`INEXACT_FACTOR`). The iterates therefore drift from the dense ones along the way
    (by a few percent of the objective in the tests) and meet them at the answer. Each ``S_t = u_t u_t^T - b`` is
    applied to a block ``X_t`` as ``u_t (u_t^T X_t) - b X_t``, the products ``b X_t`` of all
    tasks forming one ``m x m`` by ``m x (T p)`` multiplication, with ``p`` columns per task
    (``r`` plus a buffer). Tasks whose eigenpairs do not converge in
    :data:`~lowrank_theory.eigen.EIGEN_MAX_ITER` expansions are decomposed densely. No
    ``T x m x m`` array is formed unless the objective must be summed from explicit residuals.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=40, k=1, T=12, seed=0)
    >>> run = alternating_warm(reduced_offsets(fam, offset_subspace(fam)), 1, 200, 1e-20)
    >>> run.history[-1] < 1e-20, bool(np.abs(run.b).max() < 1e-9)
    (True, True)
    """
    T, m, _ = u.shape
    p = warm_block_size(rank, m)
    Uc = np.swapaxes(u, 0, 1).reshape(m, -1)
    C = (Uc @ Uc.T) / T

    scale = float(np.sum((_swap(u) @ u) ** 2))  # sum_t ||u_t u_t^T||^2

    def u_step(b: NDArray, X: NDArray, objective: float) -> tuple[NDArray, NDArray, int]:
        def apply(Y: NDArray, index: NDArray) -> NDArray:
            return u[index] @ (_swap(u[index]) @ Y) - _tasks_times(b, Y)

        rtol = INEXACT_FACTOR * np.sqrt(objective / scale) if scale > 0 else 0.0
        eig = top_eigenpairs(apply, X, rank, float(np.clip(rtol, EIGEN_RTOL, INEXACT_MAX)))
        values, vectors = eig.values, eig.vectors
        for t in np.flatnonzero(~eig.converged):
            lam, vec = np.linalg.eigh(u[t] @ u[t].T - b)
            values[t], vectors[t] = lam[::-1][:p], vec[:, ::-1][:, :p]
        return _factors(values, vectors, rank), vectors, int(eig.iterations.max(initial=0))

    b = C
    V, X, expansions = u_step(b, _start_basis(u, b, p), scale)
    b_next = _base_change(C, V)
    history = [_objective(u, V, b, b_next)]
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        b = b_next
        V, X, more = u_step(b, X, history[-1])
        expansions += more
        b_next = _base_change(C, V)
        history.append(_objective(u, V, b, b_next))
        if history[-1] <= ftol or history[-1] > ALTERNATING_SLOW_RATIO * history[-2]:
            break
    return SpanRun(b, (V,), history, it, b_next, expansions)


# --------------------------------------------------------------------------- the method
def fit_exact_span(
    family: TaskFamily,
    k: int | None = None,
    *,
    adapter: Adapter | str | int | None = None,
    max_iter: int | None = None,
    eigensolver: str = "warm",
) -> LoRAMLResult:
    """Exact LoRA-ML on a population of identity covariance, solved in the offsets' span.

    Parameters
    ----------
    family : TaskFamily
        A population with ``Sigma = None``.
    k : int, optional
        Adapter rank (symmetric unless ``adapter`` says otherwise).
    adapter : Adapter, int or {"symmetric", "asymmetric"}, optional
    max_iter : int, optional
        Alternating iterations and L-BFGS iterations together (None: the defaults,
        ``ALTERNATING_MAX_ITER`` then ``LBFGS_MAX_ITER``).
    eigensolver : {"warm", "full"}, default="warm"
        U-steps of a symmetric adapter: ``"warm"`` takes each task's top ``r`` eigenpairs by
        a block Rayleigh-Ritz iteration warm-started from the previous iteration's
        (:func:`alternating_warm`, used when the span has at least four
        times as many dimensions as its block); ``"full"`` by full eigendecompositions
        (:func:`alternating_dense`, always used for an asymmetric
        adapter). Both reach the same answer; the warm iterates drift from the dense ones
        along the way, by the eigensolver's tolerance.

    Returns
    -------
    LoRAMLResult
        ``method="exact"``.

    Raises
    ------
    ValueError
        A sample, a family with an input covariance, or an unknown ``eigensolver``.

    Notes
    -----
    Let ``Q`` span the columns of all ``U*_t`` and write ``A = A* + B``. If the range and
    co-range of ``B`` lie in ``span(Q)``, then ``W*_t - A = U*_t U*_t^T - B`` does too, so its
    best rank-r (PSD) approximation has factors in ``span(Q)``; the A-step
    ``B = mean_t (U*_t U*_t^T - Delta_t)`` then again lies in ``span(Q)``. The
    standard-retraining start ``B_0 = mean_t U*_t U*_t^T`` satisfies this, so every iterate of
    alternating minimisation (U-step: best PSD rank-r or Eckart-Young approximation of
    ``W*_t - A``; A-step: ``A = mean_t (W*_t - Delta_t)``) stays in ``span(Q)``: the problem
    is solved on ``m x m`` matrices (``m <= kT``) as ``min_{b, v} sum_t ||u_t u_t^T - b -
    v_t v_t^T||_F^2`` with ``u_t = Q^T U*_t``, and ``A = A* + Q b Q^T``, ``U_t = Q v_t``.
    The excess objective is the same in both coordinates since ``Q`` has orthonormal columns.
    Alternation stops once an iteration gains less than a factor two; L-BFGS on the factors
    (the base eliminated) then finishes. The problem is first brought to unit scale by
    powers of two (exact), so the tolerances do not depend on the offsets' units.

    The solver reads ``A*`` and ``U*``: it is fast, not independent. ``fit_lora_ml(...,
    reduce=False)`` solves the same population in the full space without them.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=30, k=2, T=5, seed=0)
    >>> fit = fit_exact_span(fam, k=2)
    >>> bool(np.linalg.norm(fit.A - fam.A_star) < 1e-8), fit.converged
    (True, True)
    """
    adapter, max_iter = check_problem(family, k, adapter, max_iter)
    check_choice(eigensolver, "eigensolver", EIGENSOLVERS)
    if not isinstance(family, TaskFamily) or not family.isotropic:
        raise ValueError(
            "fit_exact_span solves a population of identity input covariance (a TaskFamily "
            "with Sigma=None); use lowrank_theory.lora_ml.fit_exact_general for samples and "
            "general covariances."
        )
    m = min(family.d, family.k * family.T)  # the columns of offset_subspace's basis
    block = warm_block_size(adapter.rank, m)
    warm = eigensolver == "warm" and adapter.symmetric and block is not None
    # The warm path is a loop over m x p blocks with a few one-off products of side d around
    # it: one BLAS thread for all of it, as for the library's other small-matrix loops (at
    # d = 2000, k = 8, T = 100 on the 2-core machine under load: 2.4 s on one thread, 12 s and
    # more with BLAS's default threads). The dense path works on m x m matrices.
    with blas_threads_for(block if warm else m):
        return _solve_in_span(family, adapter, max_iter, warm)


def _solve_in_span(family: TaskFamily, adapter: Adapter, max_iter: int | None,
                   warm: bool) -> LoRAMLResult:
    Q = offset_subspace(family)
    u = reduced_offsets(family, Q)
    m = Q.shape[1]
    # Powers of two to unit scale: offsets' entries of order one, objectives with them.
    scale = float(np.sum(u * u)) / (family.T * m) if m else 0.0
    c = 2.0 ** round(0.5 * np.log2(scale)) if scale > 0 else 1.0
    u_n = u / c
    syy = float(np.sum((np.swapaxes(u_n, 1, 2) @ u_n) ** 2))  # sum_t ||u_t u_t^T||^2
    ftol = objective_target(syy)
    n_alt = ALTERNATING_MAX_ITER if max_iter is None else min(max_iter, ALTERNATING_MAX_ITER)
    stats_n = None
    if warm:
        run = alternating_warm(u_n, adapter.rank, n_alt, ftol)
        how = f"alternating minimisation, warm top-{adapter.rank} eigenpairs"
    else:
        stats_n = reduced_statistics(u_n)
        run = alternating_dense(stats_n, adapter, n_alt, ftol)
        how = "alternating minimisation"
    message = f"{how} ({run.n_iter} it.)"
    b, factors, history, n_iter = run.b, run.factors, list(run.history), run.n_iter
    polished = history[-1] > ftol
    if polished:
        stats_n = reduced_statistics(u_n) if stats_n is None else stats_n
        budget = LBFGS_MAX_ITER if max_iter is None else max_iter - n_iter
        b, factors, res = variable_projection(stats_n, adapter, factors, budget, ftol, history)
        n_iter += res.nit
        message += f" then L-BFGS: {res.message}"
    else:
        message += " reached the objective target"
    b, factors = c**2 * b, tuple(c * f for f in factors)
    history = [c**4 * f for f in history]
    if run.b_next is not None and not polished:
        # The warm run's answer, judged without forming T x m x m arrays.
        gradient = span_stationarity(u, factors[0], b, c**2 * run.b_next)
        result = make_result(None, adapter, b, factors, history, n_iter, message, "exact",
                             gradient=gradient)
    else:
        result = make_result(reduced_statistics(u), adapter, b, factors, history, n_iter,
                             message, "exact")
    factors = tuple(_tasks_times(Q, f) for f in factors)
    V = factors[1] if len(factors) > 1 else None
    return dataclasses.replace(result, A=family.A_star + Q @ b @ Q.T, U=factors[0], V=V)
