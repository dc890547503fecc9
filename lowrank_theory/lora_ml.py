"""LoRA-ML: retraining the base together with one low-rank adapter per task.

The objective is ``F(A, U) = sum_t L_t(A + Delta_t)`` with ``Delta_t = U_t U_t^T`` (symmetric,
the theory's adapter) or ``U_t V_t^T`` (asymmetric, LoRA's). In the population it is reported
as an *excess* loss, ``sum_t ||(A + Delta_t - W*_t) Sigma_t^{1/2}||_F^2``, which is zero at the
ground truth. The paper's own algorithm lives in :mod:`lowrank_theory.paper_protocol`;
:func:`fit_lora_ml` is the front door to it and to the exact solvers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._repr import summary_repr
from lowrank_theory._threads import blas_threads_for
from lowrank_theory._validation import (
    as_seed_generator,
    check_array,
    check_choice,
    check_float,
    check_int,
)
from lowrank_theory.adapters import (
    Adapter,
    Factors,
    as_adapter,
)
from lowrank_theory.losses import (
    Source,
    Statistics,
    loss_gradient,
    statistics,
    task_losses,
)
from lowrank_theory.objective import (
    check_source,
    lora_ml_gradient,
    lora_ml_objective,
    pack,
    stationarity,
    summed_objective,
    unpack,
)
from lowrank_theory.paper_protocol import (
    CONVENTIONS,
    DIVERGENCE_FACTOR,
    PAPER_INIT_SCALE,
    PAPER_INNER_STEPS,
    PAPER_LR_A,
    PAPER_LR_U,
    PAPER_ROUNDS,
    paper_round,  # noqa: F401 - re-exported: the protocol's rounds were defined here before
    run_paper_protocol,
)
from lowrank_theory.retraining import BaseStep, check_pooled_design
from lowrank_theory.tasks import TaskData, TaskFamily

__all__ = [
    "LoRAMLResult",
    "lora_ml_objective",
    "lora_ml_gradient",
    "fit_lora_ml",
    "offset_subspace",
    "stationarity",
    "METHODS",
    "STATIONARITY_RTOL",
]

#: Solvers of :func:`fit_lora_ml`.
METHODS = ("exact", "paper", "lbfgs")

#: A fit has converged when its gradient norm is at most ``STATIONARITY_RTOL`` times the size
#: of the terms that cancel in it (see :func:`stationarity`). The exact and L-BFGS solvers end
#: between 1e-16 and 1.1e-10 (30 random problems each of samples, populations and general
#: covariances); the paper protocol, 3000 rounds at d=10, T=3, N=5000, ends at 3.5e-7 under
#: its own convention. 1e-9 lies between, with room on both sides.
STATIONARITY_RTOL = 1e-9

#: Objective below ``EXACT_FTOL * scale`` ends the exact solver: the excess loss is then at the
#: level of double-precision round-off of a sum of squares of entries of size ``scale``.
EXACT_FTOL = 1e-26
#: Alternating minimisation hands over to L-BFGS once an iteration shrinks the objective by
#: less than this factor (its rate is linear; L-BFGS finishes faster from there).
ALTERNATING_SLOW_RATIO = 0.5
#: Largest number of alternating iterations before the L-BFGS polish.
ALTERNATING_MAX_ITER = 200
#: Default iteration budget of the L-BFGS solvers.
LBFGS_MAX_ITER = 20000


@dataclass(frozen=True, eq=False)
class LoRAMLResult:
    """Result of :func:`fit_lora_ml`, in the spirit of ``scipy.optimize.OptimizeResult``.

    Attributes
    ----------
    A : ndarray of shape (d, d)
        Retrained base.
    U : ndarray of shape (T, d, r)
        Adapter factors (``Delta_t = U_t U_t^T`` or ``U_t V_t^T``).
    V : ndarray of shape (T, d, r) or None
        Right factors of an asymmetric adapter, None for a symmetric one.
    objective : float
        Final objective (population: excess loss; sample: summed empirical loss).
    history : ndarray of shape (n_iter + 1,)
        Objective at the start and after each iteration (round for ``method="paper"``).
    grad_norm : float
        Frobenius norm of the full gradient at the answer.
    stationarity : float
        ``grad_norm`` relative to the size of the terms that cancel in it
        (:func:`stationarity`); NaN if the run diverged.
    converged : bool
        Whether the answer is a stationary point: ``stationarity <= STATIONARITY_RTOL`` and
        no divergence. Judged from the answer, whatever the solver's own stopping test said.
    n_iter : int
        Iterations (rounds) done.
    message : str
        What stopped the solver, and the stationarity verdict.
    method : str
        The solver used.
    adapter : Adapter
        The adapter family.
    """

    A: NDArray[np.float64]
    U: NDArray[np.float64]
    V: NDArray[np.float64] | None
    objective: float
    history: NDArray[np.float64]
    grad_norm: float
    stationarity: float
    converged: bool
    n_iter: int
    message: str
    method: str
    adapter: Adapter

    def __repr__(self) -> str:
        return summary_repr(type(self).__name__, {
            "method": self.method, "adapter": self.adapter, "objective": self.objective,
            "converged": self.converged, "n_iter": self.n_iter,
            "stationarity": self.stationarity, "A": self.A, "U": self.U})

    @property
    def factors(self) -> Factors:
        """The adapter factors as a tuple, ``(U,)`` or ``(U, V)``."""
        return (self.U,) if self.V is None else (self.U, self.V)

    @property
    def deltas(self) -> NDArray[np.float64]:
        """Per-task updates ``Delta_t``, shape (T, d, d)."""
        return self.adapter.delta(self.factors)


# --------------------------------------------------------------------------- solvers
def _lbfgs(
    fun: Callable[[NDArray], tuple[float, NDArray]],
    x0: NDArray,
    max_iter: int,
    ftol_abs: float,
    history: list[float],
) -> scipy.optimize.OptimizeResult:
    # scipy's ftol is relative to max(|f|, 1): for objectives that go to zero it stops far too
    # early, so the relative test is switched off and an absolute target ends the run instead
    # (scipy ends the run when the callback raises StopIteration).
    if max_iter == 0:
        return scipy.optimize.OptimizeResult(x=x0, nit=0, message="max_iter=0: no iteration")

    def callback(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        history.append(float(intermediate_result.fun))
        if intermediate_result.fun <= ftol_abs:
            raise StopIteration

    return scipy.optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={"maxiter": max_iter, "ftol": 0.0, "gtol": 0.0, "maxcor": 30},
    )


def _variable_projection(
    stats: Statistics, adapter: Adapter, factors: Factors, max_iter: int, ftol_abs: float,
    history: list[float],
) -> tuple[NDArray, Factors, scipy.optimize.OptimizeResult]:
    """L-BFGS over the factors with the base eliminated by its exact minimiser."""
    base = BaseStep(stats)
    shape = factors[0].shape
    d = stats.d

    def fun(x: NDArray) -> tuple[float, NDArray]:
        _, fac = unpack(x, d, shape, adapter.n_factors, with_A=False)
        delta = adapter.delta(fac)
        W = base(delta) + delta
        G = loss_gradient(stats, W)
        # Envelope theorem: at the optimal base, dF/dA = 0, so the reduced gradient is the
        # partial gradient in the factors.
        return summed_objective(stats, 0.0, W), pack(None, adapter.factor_gradients(fac, G))

    res = _lbfgs(fun, pack(None, factors), max_iter, ftol_abs, history)
    _, fac = unpack(res.x, d, shape, adapter.n_factors, with_A=False)
    return base(adapter.delta(fac)), fac, res


def _joint_lbfgs(
    stats: Statistics, adapter: Adapter, A: NDArray, factors: Factors, max_iter: int,
    ftol_abs: float, history: list[float],
) -> tuple[NDArray, Factors, scipy.optimize.OptimizeResult]:
    """L-BFGS jointly over the base and the factors."""
    shape = factors[0].shape
    d = stats.d

    def fun(x: NDArray) -> tuple[float, NDArray]:
        A_, fac = unpack(x, d, shape, adapter.n_factors, with_A=True)
        W = A_ + adapter.delta(fac)
        G = loss_gradient(stats, W)
        return summed_objective(stats, 0.0, W), pack(G.sum(axis=0), adapter.factor_gradients(fac, G))

    res = _lbfgs(fun, pack(A, factors), max_iter, ftol_abs, history)
    A_, fac = unpack(res.x, d, shape, adapter.n_factors, with_A=True)
    return A_, fac, res


def _alternating(
    stats: Statistics, adapter: Adapter, A: NDArray, max_iter: int, ftol_abs: float,
    history: list[float],
) -> tuple[NDArray, Factors, int]:
    """Exact block minimisation for identity input covariance: U-step then A-step.

    U-step: ``Delta_t = adapter.project(W*_t - A)`` (best rank-r / PSD rank-r approximation);
    A-step: ``A = mean_t (W*_t - Delta_t)``. Each step is an exact minimisation, so the
    objective never increases.
    """
    base = BaseStep(stats)
    factors = adapter.project(stats.Syx - A)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        delta = adapter.delta(factors)
        A = base(delta)
        factors = adapter.project(stats.Syx - A)
        f = summed_objective(stats, A, adapter.delta(factors))
        prev = history[-1]
        history.append(f)
        if f <= ftol_abs or f > ALTERNATING_SLOW_RATIO * prev:
            break
    return A, factors, it


def offset_subspace(fam: TaskFamily) -> NDArray[np.float64]:
    """Orthonormal basis ``Q`` of the span of all offset factors, shape (d, m), ``m <= kT``."""
    return scipy.linalg.orth(np.concatenate(list(fam.U_star), axis=1))


def _reduced_isotropic_stats(fam: TaskFamily, Q: NDArray) -> Statistics:
    """Population statistics of the problem restricted to ``span(Q)`` with ``A*`` removed."""
    u = Q.T @ fam.U_star
    D = u @ np.swapaxes(u, 1, 2)
    m = Q.shape[1]
    syy = np.einsum("tij,tij->t", D, D)
    return Statistics(np.broadcast_to(np.eye(m), D.shape), D, syy, 0.0, True, D, True)


def _initial_factors(
    adapter: Adapter, T: int, d: int, rng: np.random.Generator, U0: ArrayLike | None,
    V0: ArrayLike | None, scale: float,
) -> Factors:
    if U0 is None:
        if V0 is not None:
            raise ValueError("V0 needs U0: give both starting factors, or neither.")
        return adapter.init_factors(T, d, rng, scale)
    U0 = check_array(U0, "U0", (T, d, adapter.rank))
    if adapter.n_factors == 1:
        if not np.any(U0):
            raise ValueError(
                "U0 = 0 is a stationary point of the symmetric LoRA-ML objective: the solver "
                "would never leave it. Start from a non-zero U0 (or leave U0=None)."
            )
        return (U0,)
    V0 = rng.standard_normal(U0.shape) * scale if V0 is None else check_array(V0, "V0", U0.shape)
    if not np.any(U0) and not np.any(V0):
        raise ValueError("U0 = V0 = 0 is a stationary point: start from non-zero factors.")
    return (U0, V0)


def fit_lora_ml(
    source: Source,
    k: int | None = None,
    *,
    adapter: Adapter | str | int | None = None,
    method: str = "exact",
    seed: int | np.random.Generator | None = None,
    A0: ArrayLike | None = None,
    U0: ArrayLike | None = None,
    V0: ArrayLike | None = None,
    max_iter: int | None = None,
    inner_steps: int = PAPER_INNER_STEPS,
    lr_U: float = PAPER_LR_U,
    lr_A: float = PAPER_LR_A,
    init_scale: float = PAPER_INIT_SCALE,
    convention: str = "paper",
) -> LoRAMLResult:
    """Fit LoRA-ML: ``min_{A, U} sum_t L_t(A + Delta_t(U))``.

    Parameters
    ----------
    source : TaskFamily or TaskData
        Population or sample. A sample needs at least ``d`` pooled samples (``T * n >= d``)
        and a well-conditioned pooled design, else the base is not identified.
    k : int, optional
        Adapter rank (symmetric adapter unless ``adapter`` says otherwise).
    adapter : Adapter, int or {"symmetric", "asymmetric"}, optional
        Adapter family; a kind name takes its rank from ``k``.
    method : {"exact", "paper", "lbfgs"}, default="exact"
        ``"exact"``: fast exact solver. With a population of identity input covariance and no
        ``U0`` it works in the span of the offsets (see Notes), alternating closed-form steps
        (A: mean of ``W*_t - Delta_t``; U: best PSD rank-r or Eckart-Young truncation), then
        L-BFGS with the base eliminated. Otherwise: L-BFGS on the factors with the base
        eliminated by its normal equations (variable projection), from a data-driven start
        or ``U0``. ``"paper"``: the authors' block-coordinate gradient descent
        (:mod:`lowrank_theory.paper_protocol`): ``A0 = 0``, ``U0 ~ N(0, init_scale^2)``, per
        round ``inner_steps`` steps of size ``lr_U`` on every ``U_t`` then one step of size
        ``lr_A`` on ``A``, for ``max_iter`` rounds (3000 by default). ``"lbfgs"``: scipy's
        L-BFGS-B jointly over ``(A, U)`` from the same random start.
    seed : int, Generator or None
        Source of the random start.
    A0 : array_like of shape (d, d), optional
        Starting base of ``"paper"`` and ``"lbfgs"`` (default 0). Refused by ``"exact"``,
        which eliminates the base by its exact minimiser and so has no use for it.
    U0, V0 : array_like of shape (T, d, r), optional
        Starting factors (``U0 = 0`` is refused: it is a stationary point). ``V0`` only for
        an asymmetric adapter, and only with ``U0``.
    max_iter : int, optional
        Rounds (``"paper"``) or iterations (others; for ``"exact"`` the alternating steps and
        the L-BFGS iterations together). None: the method's default; 0: no iteration, the
        start is returned.
    inner_steps, lr_U, lr_A, init_scale
        The paper protocol's schedule (``"paper"``) and the random start's scale.
    convention : {"paper", "sum"}, default="paper"
        Loss convention of the ``"paper"`` steps, with ``L_t`` the task's mean squared error:
        ``"paper"`` (the authors' script) ``U_t <- U_t - lr_U d(L_t / 2)/dU_t`` and
        ``A <- A - lr_A d((1/T) sum_t L_t / 2)/dA``; ``"sum"`` ``U_t <- U_t - lr_U dF/dU_t``
        and ``A <- A - lr_A dF/dA`` with ``F = sum_t L_t``. The other methods minimise the
        objective, whose minimisers do not depend on its scale.

    Returns
    -------
    LoRAMLResult
        ``converged`` is judged from the answer: its gradient is at most
        ``STATIONARITY_RTOL`` times the size of its terms (:func:`stationarity`), and the run
        did not diverge.

    Raises
    ------
    ValueError
        Unknown method or convention, adapter rank above ``d``, a zero start, ``A0`` with
        ``method="exact"``, ``V0`` with a symmetric adapter, non-finite or misshapen starts,
        or a sample with too few pooled samples or a singular pooled design.
    TypeError
        A non-integer ``k`` or ``max_iter``.

    Notes
    -----
    *Span reduction* (population, ``Sigma = I``). Let ``Q`` span the columns of all ``U*_t``
    and write ``A = A* + B``. If the range and co-range of ``B`` lie in ``span(Q)``, then
    ``W*_t - A = U*_t U*_t^T - B`` does too, so its best rank-r (PSD) approximation has factors
    in ``span(Q)``; the A-step ``B = mean_t (U*_t U*_t^T - Delta_t)`` then again lies in
    ``span(Q)``. The standard-retraining start ``B_0 = mean_t U*_t U*_t^T`` satisfies this, so
    every iterate stays in ``span(Q)`` and the whole problem is solved on ``m x m`` matrices
    (``m <= kT``); ``d x d`` matrices are touched only to form ``A = A* + Q b Q^T``. The
    excess objective is the same in both coordinates since ``Q`` has orthonormal columns.

    The loops run with one BLAS thread when their matrices are small (``d``, or ``m`` for the
    span reduction, at most :data:`~lowrank_theory._threads.SINGLE_THREAD_MAX_DIM`).

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=8, k=1, T=3, seed=0)
    >>> fit = fit_lora_ml(fam, k=1, seed=0)
    >>> bool(np.linalg.norm(fit.A - fam.A_star) < 1e-6), fit.converged
    (True, True)
    """
    check_source(source)
    check_choice(method, "method", METHODS)
    check_choice(convention, "convention", CONVENTIONS)
    if adapter is None and k is None:
        raise ValueError("give the adapter rank k (or an adapter).")
    if k is not None:
        k = check_int(k, "k")
    adapter = as_adapter(k) if adapter is None else as_adapter(adapter, k)
    T, d = source.T, source.d
    adapter.check_rank(d)
    check_pooled_design(source)
    rng = as_seed_generator(seed)
    init_scale = check_float(init_scale, "init_scale", strict=True)
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter", minimum=0)
    if A0 is not None:
        A0 = check_array(A0, "A0", (d, d))
        if method == "exact":
            raise ValueError(
                "A0 is not used by method='exact', which eliminates the base by its exact "
                "minimiser for the current factors: start the factors with U0 instead, or use "
                "method='lbfgs' or 'paper' to start from A0."
            )
    if V0 is not None and adapter.n_factors == 1:
        raise ValueError("V0 is only for an asymmetric adapter; a symmetric one has U only.")

    if method == "exact" and isinstance(source, TaskFamily) and source.isotropic and U0 is None:
        return _fit_span(source, adapter, max_iter)
    stats = statistics(source)
    if isinstance(source, TaskData):
        BaseStep(stats)  # refuses an ill-conditioned pooled design before any work
    A = np.zeros((d, d)) if A0 is None else A0
    W_ls = _least_squares(stats) if method == "exact" or isinstance(source, TaskData) else None
    if method == "exact" and U0 is None:
        factors = _data_driven_start(stats, adapter, rng, init_scale, W_ls)
    else:
        factors = _initial_factors(adapter, T, d, rng, U0, V0, init_scale)
    with blas_threads_for(d):
        if method == "paper":
            return _fit_paper(
                stats, adapter, A, factors, max_iter, inner_steps, lr_U, lr_A, convention
            )
        budget = LBFGS_MAX_ITER if max_iter is None else max_iter
        if isinstance(source, TaskData) and W_ls is not None:
            stats, shift = _centred(stats, W_ls), float(np.sum(task_losses(stats, W_ls)))
        if method == "exact":
            base = BaseStep(stats)
            history = [summed_objective(stats, base(adapter.delta(factors)), adapter.delta(factors))]
            A, factors, res = _variable_projection(
                stats, adapter, factors, budget, _ftol(stats), history
            )
            message = f"variable projection L-BFGS: {res.message}"
        else:
            history = [summed_objective(stats, A, adapter.delta(factors))]
            A, factors, res = _joint_lbfgs(stats, adapter, A, factors, budget, _ftol(stats), history)
            message = f"L-BFGS: {res.message}"
        if isinstance(source, TaskData) and W_ls is not None:
            history = [f + shift for f in history]
        return _result(stats, adapter, A, factors, history, res.nit, message, method)


def _least_squares(stats: Statistics) -> NDArray[np.float64] | None:
    """Each task's own least-squares model ``Syx_t Sxx_t^{-1}``; None if a design is singular."""
    try:
        return np.stack(
            [scipy.linalg.solve(S, B, assume_a="pos").T for S, B in zip(stats.Sxx, stats.Sxy)]
        )
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgWarning):
        return None


def _centred(stats: Statistics, W_ls: NDArray[np.float64]) -> Statistics:
    """Sample statistics whose objective is measured from each task's least-squares model.

    ``L_t(W) = L_t(W_ls_t) + tr((W - W_ls_t) Sxx_t (W - W_ls_t)^T)`` exactly. The residual form
    keeps full relative precision near the optimum, where the expanded form loses digits to
    the cancellation of ``tr(W Sxx W^T)``, ``2 tr(W Sxy)`` and ``syy``: on it L-BFGS stops on a
    flat, noisy objective with a relative gradient near 1e-9.
    """
    return Statistics(stats.Sxx, stats.Sxy, stats.syy, 0.0, stats.population, W_ls, False)


def _ftol(stats: Statistics) -> float:
    return EXACT_FTOL * max(1.0, float(np.sum(stats.syy)))


def _fit_span(source: TaskFamily, adapter: Adapter, max_iter: int | None) -> LoRAMLResult:
    """The exact solver on a population of identity covariance, in the span of the offsets."""
    Q = offset_subspace(source)
    stats = _reduced_isotropic_stats(source, Q)
    ftol = _ftol(stats)
    history: list[float] = []
    with blas_threads_for(Q.shape[1]):
        b = BaseStep(stats)()  # standard retraining, restricted to span(Q)
        factors = adapter.project(stats.Syx - b)
        history.append(summed_objective(stats, b, adapter.delta(factors)))
        n_alt_max = ALTERNATING_MAX_ITER if max_iter is None else min(max_iter, ALTERNATING_MAX_ITER)
        b, factors, n_iter = _alternating(stats, adapter, b, n_alt_max, ftol, history)
        message = f"alternating minimisation ({n_iter} it.)"
        if history[-1] > ftol:
            budget = LBFGS_MAX_ITER if max_iter is None else max_iter - n_iter
            b, factors, res = _variable_projection(stats, adapter, factors, budget, ftol, history)
            n_iter += res.nit
            message += f" then L-BFGS: {res.message}"
        else:
            message += " reached the objective target"
        result = _result(stats, adapter, b, factors, history, n_iter, message, "exact")
    factors = tuple(Q @ f for f in factors)
    V = factors[1] if len(factors) > 1 else None
    return dataclasses.replace(result, A=source.A_star + Q @ b @ Q.T, U=factors[0], V=V)


def _fit_paper(stats, adapter, A, factors, max_iter, inner_steps, lr_U, lr_A, convention):
    inner_steps = check_int(inner_steps, "inner_steps", minimum=0)
    lr_U = check_float(lr_U, "lr_U", strict=True)
    lr_A = check_float(lr_A, "lr_A", strict=True)
    rounds = PAPER_ROUNDS if max_iter is None else max_iter
    run = run_paper_protocol(
        stats, adapter, A, factors, rounds, inner_steps, lr_U, lr_A, convention
    )
    if run.diverged:
        message = (
            f"diverged in round {run.rounds_done} of {rounds}: the objective became non-finite "
            f"or exceeded {DIVERGENCE_FACTOR:g} times its scale; reduce lr_U and lr_A"
        )
    else:
        message = f"ran {rounds} rounds of the paper protocol ({convention!r} convention)"
    return _result(
        stats, adapter, run.A, run.factors, run.history, run.rounds_done, message, "paper",
        diverged=run.diverged,
    )


def _data_driven_start(
    stats: Statistics, adapter: Adapter, rng: np.random.Generator, scale: float,
    W_ls: NDArray[np.float64] | None,
) -> Factors:
    """Adapters fitted to each task's own least-squares model minus the SR base.

    When a task's design is singular (fewer samples than dimensions) the start is random.
    """
    if W_ls is None:
        return adapter.init_factors(stats.T, stats.d, rng, scale)
    factors = adapter.project(W_ls - BaseStep(stats)())
    # Never hand a solver an exactly zero factor (U = 0 is stationary).
    return tuple(f + scale * 1e-3 * rng.standard_normal(f.shape) for f in factors)


def _result(
    stats, adapter, A, factors, history, n_iter, message, method, diverged=False
) -> LoRAMLResult:
    with np.errstate(over="ignore", invalid="ignore"):
        grad_norm, relative = stationarity(stats, adapter, A, factors)
    if diverged:
        relative = float("nan")
    converged = bool(relative <= STATIONARITY_RTOL)
    verdict = "stationary" if converged else "NOT stationary"
    message = (
        f"{message}; {verdict}: relative gradient {relative:.2g} "
        f"({'<=' if converged else 'not <='} {STATIONARITY_RTOL:g})"
    )
    history = np.asarray(history, dtype=np.float64)
    return LoRAMLResult(
        A,
        factors[0],
        factors[1] if len(factors) > 1 else None,
        float(history[-1]),
        history,
        grad_norm,
        relative,
        converged,
        int(n_iter),
        message,
        method,
        adapter,
    )
