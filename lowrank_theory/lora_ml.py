"""LoRA-ML: retraining the base together with one low-rank adapter per task.

The objective is ``F(A, U) = sum_t L_t(A + Delta_t)`` with ``Delta_t = U_t U_t^T`` (symmetric,
the theory's adapter) or ``U_t V_t^T`` (asymmetric, LoRA's). In the population it is reported
as an *excess* loss, ``sum_t ||(A + Delta_t - W*_t) Sigma_t^{1/2}||_F^2``, which is zero at the
ground truth.

:func:`fit_lora_ml` is the front door: it validates the problem and dispatches to one function
per method, each usable on its own:

- :func:`~lowrank_theory.span.fit_exact_span`: exact, population of identity covariance, in the
  offsets' span (:mod:`lowrank_theory.span`);
- :func:`fit_exact_general`: exact, any population or sample, by variable projection;
- :func:`fit_paper`: the authors' block-coordinate descent (:mod:`lowrank_theory.paper_protocol`);
- :func:`fit_lbfgs`: L-BFGS jointly over the base and the factors.

All return a :class:`~lowrank_theory.lora_ml_result.LoRAMLResult`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._threads import blas_threads_for
from lowrank_theory._validation import (
    as_seed_generator,
    check_array,
    check_bool,
    check_choice,
    check_float,
    check_int,
)
from lowrank_theory.adapters import Adapter, Factors
from lowrank_theory.lbfgs import (
    LBFGS_MAX_ITER,
    Units,
    centred,
    joint,
    least_squares_models,
    objective_target,
    variable_projection,
)
from lowrank_theory.lora_ml_result import (
    STATIONARITY_RTOL,
    LoRAMLResult,
    check_problem,
    make_result,
)
from lowrank_theory.losses import Source, Statistics, statistics, task_losses
from lowrank_theory.objective import (
    check_source,
    lora_ml_gradient,
    lora_ml_objective,
    stationarity,
    summed_objective,
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
from lowrank_theory.retraining import BaseStep
from lowrank_theory.span import fit_exact_span, offset_subspace
from lowrank_theory.tasks import TaskData, TaskFamily

__all__ = [
    "LoRAMLResult",
    "lora_ml_objective",
    "lora_ml_gradient",
    "fit_lora_ml",
    "fit_exact_span",
    "fit_exact_general",
    "fit_paper",
    "fit_lbfgs",
    "offset_subspace",
    "stationarity",
    "METHODS",
    "STATIONARITY_RTOL",
]

#: Solvers of :func:`fit_lora_ml`.
METHODS = ("exact", "paper", "lbfgs")


# --------------------------------------------------------------------------- starts
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


def _start(source: Source, adapter: Adapter, seed: int | np.random.Generator | None,
           A0: ArrayLike | None, U0: ArrayLike | None, V0: ArrayLike | None, init_scale: float,
           ) -> tuple[NDArray[np.float64], Factors, float]:
    """The random or given start ``(A0, factors)`` of the paper protocol and L-BFGS."""
    T, d = source.T, source.d
    init_scale = check_float(init_scale, "init_scale", strict=True)
    A = np.zeros((d, d)) if A0 is None else check_array(A0, "A0", (d, d))
    if V0 is not None and adapter.n_factors == 1:
        raise ValueError("V0 is only for an asymmetric adapter; a symmetric one has U only.")
    factors = _initial_factors(adapter, T, d, as_seed_generator(seed), U0, V0, init_scale)
    return A, factors, init_scale


# --------------------------------------------------------------------------- the methods
def fit_exact_general(
    source: Source,
    k: int | None = None,
    *,
    adapter: Adapter | str | int | None = None,
    seed: int | np.random.Generator | None = None,
    U0: ArrayLike | None = None,
    V0: ArrayLike | None = None,
    max_iter: int | None = None,
    init_scale: float = PAPER_INIT_SCALE,
) -> LoRAMLResult:
    """Exact LoRA-ML on any population or sample, by variable projection.

    Parameters
    ----------
    source : TaskFamily or TaskData
        Population (any covariance) or sample (``T * n >= d`` with a well-conditioned pooled
        design).
    k : int, optional
        Adapter rank.
    adapter : Adapter, int or {"symmetric", "asymmetric"}, optional
    seed : int, Generator or None
        Source of the random start when there is no data-driven one.
    U0, V0 : array_like of shape (T, d, r), optional
        Starting factors; default: each task's least-squares model minus the SR base,
        projected on the adapter (random when a task's design is singular).
    max_iter : int, optional
        L-BFGS iterations (None: ``LBFGS_MAX_ITER``; 0: the start is returned).
    init_scale : float
        Scale of a random start.

    Returns
    -------
    LoRAMLResult
        ``method="exact"``.

    Notes
    -----
    For fixed updates the base has a closed form, the normal equations
    ``A (sum_t Sxx_t) = sum_t (Syx_t - Delta_t Sxx_t)``
    (:class:`~lowrank_theory.retraining.BaseStep`). Variable projection minimises
    ``phi(U) = min_A F(A, U) = F(A(U), U)`` over the factors with L-BFGS; by the envelope
    theorem ``grad phi(U) = dF/dU`` at ``A(U)``. A sample's objective is measured from each
    task's least-squares model, ``L_t(W) = L_t(W_ls_t) + tr((W - W_ls_t) Sxx_t (W -
    W_ls_t)^T)``, which keeps its relative precision near the optimum. The statistics are
    first brought to unit scale by powers of two (exact), so the data's units do not matter.
    This solver never reads ``A*`` or ``U*``.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=6, k=1, T=3, seed=0, Sigma=np.diag(np.arange(1.0, 7.0)))
    >>> fit = fit_exact_general(fam, k=1, seed=0)
    >>> bool(np.linalg.norm(fit.A - fam.A_star) < 1e-6), fit.converged
    (True, True)
    """
    adapter, max_iter = check_problem(source, k, adapter, max_iter)
    init_scale = check_float(init_scale, "init_scale", strict=True)
    if V0 is not None and adapter.n_factors == 1:
        raise ValueError("V0 is only for an asymmetric adapter; a symmetric one has U only.")
    rng = as_seed_generator(seed)
    T, d = source.T, source.d
    stats = statistics(source)
    if isinstance(source, TaskData):
        BaseStep(stats)  # refuses an ill-conditioned pooled design before any work
    units = Units.of(stats)
    stats_n = units.normalise(stats)
    W_ls = least_squares_models(stats_n)
    if U0 is None:
        factors = _data_driven_start(stats_n, adapter, rng, init_scale, W_ls)
    else:
        factors = units.factors_in(_initial_factors(adapter, T, d, rng, U0, V0, init_scale))
    shift = 0.0
    if isinstance(source, TaskData) and W_ls is not None:
        stats_n, shift = centred(stats_n, W_ls), float(np.sum(task_losses(stats_n, W_ls)))
    budget = LBFGS_MAX_ITER if max_iter is None else max_iter
    with blas_threads_for(d):
        base = BaseStep(stats_n)
        delta = adapter.delta(factors)
        history = [summed_objective(stats_n, base(delta), delta)]
        A, factors, res = variable_projection(stats_n, adapter, factors, budget,
                                              objective_target(np.sum(stats_n.syy)), history)
        history = [units.y**2 * (f + shift) for f in history]
        return make_result(stats, adapter, units.model * A, units.factors_out(factors), history,
                       res.nit, f"variable projection L-BFGS: {res.message}", "exact")


def fit_paper(
    source: Source,
    k: int | None = None,
    *,
    adapter: Adapter | str | int | None = None,
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
    """The authors' LoRA-ML algorithm: block-coordinate gradient descent.

    Parameters
    ----------
    source : TaskFamily or TaskData
    k : int, optional
        Adapter rank.
    adapter : Adapter, int or {"symmetric", "asymmetric"}, optional
    seed : int, Generator or None
        Source of the random start ``U0 ~ N(0, init_scale^2)``.
    A0 : array_like of shape (d, d), optional
        Starting base (default 0).
    U0, V0 : array_like of shape (T, d, r), optional
        Starting factors (``U0 = 0`` is refused: it is a stationary point).
    max_iter : int, optional
        Rounds (None: ``PAPER_ROUNDS`` = 3000).
    inner_steps, lr_U, lr_A : int, float, float
        Per round, ``inner_steps`` steps of size ``lr_U`` on every ``U_t``, then one step of
        size ``lr_A`` on ``A`` (the authors': 10, 0.003, 0.03).
    init_scale : float
        Scale of the random start (the authors': 0.1).
    convention : {"paper", "sum"}, default="paper"
        Loss convention of the steps (:mod:`lowrank_theory.paper_protocol`).

    Returns
    -------
    LoRAMLResult
        ``method="paper"``; a diverged run says so in ``message`` and is not ``converged``.

    Notes
    -----
    With ``G_t = 2 (W_t Sxx_t - Syx_t)``, ``W_t = A + U_t U_t^T``, the ``"paper"`` convention's
    steps are ``U_t <- U_t - (lr_U / 2) (G_t + G_t^T) U_t`` and
    ``A <- A - lr_A / (2T) sum_t G_t`` (the authors' ``linear/learners.py``).

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> data = TaskFamily.random(d=4, k=1, T=3, seed=0).sample(200, seed=1)
    >>> fit_paper(data, k=1, seed=0, max_iter=5).n_iter
    5
    """
    adapter, max_iter = check_problem(source, k, adapter, max_iter)
    check_choice(convention, "convention", CONVENTIONS)
    A, factors, _ = _start(source, adapter, seed, A0, U0, V0, init_scale)
    inner_steps = check_int(inner_steps, "inner_steps", minimum=0)
    lr_U = check_float(lr_U, "lr_U", strict=True)
    lr_A = check_float(lr_A, "lr_A", strict=True)
    stats = statistics(source)
    if isinstance(source, TaskData):
        BaseStep(stats)  # refuses an ill-conditioned pooled design before any work
    rounds = PAPER_ROUNDS if max_iter is None else max_iter
    with blas_threads_for(source.d):
        run = run_paper_protocol(
            stats, adapter, A, factors, rounds, inner_steps, lr_U, lr_A, convention
        )
        if run.diverged:
            message = (
                f"diverged in round {run.rounds_done} of {rounds}: the objective became "
                f"non-finite or exceeded {DIVERGENCE_FACTOR:g} times its scale; reduce lr_U "
                "and lr_A"
            )
        else:
            message = f"ran {rounds} rounds of the paper protocol ({convention!r} convention)"
        return make_result(stats, adapter, run.A, run.factors, run.history, run.rounds_done,
                       message, "paper", diverged=run.diverged)


def fit_lbfgs(
    source: Source,
    k: int | None = None,
    *,
    adapter: Adapter | str | int | None = None,
    seed: int | np.random.Generator | None = None,
    A0: ArrayLike | None = None,
    U0: ArrayLike | None = None,
    V0: ArrayLike | None = None,
    max_iter: int | None = None,
    init_scale: float = PAPER_INIT_SCALE,
) -> LoRAMLResult:
    """LoRA-ML by L-BFGS jointly over the base and the factors, from a generic start.

    Parameters
    ----------
    source : TaskFamily or TaskData
    k : int, optional
        Adapter rank.
    adapter : Adapter, int or {"symmetric", "asymmetric"}, optional
    seed : int, Generator or None
        Source of the random start ``U0 ~ N(0, init_scale^2)``.
    A0 : array_like of shape (d, d), optional
        Starting base (default 0).
    U0, V0 : array_like of shape (T, d, r), optional
        Starting factors.
    max_iter : int, optional
        L-BFGS iterations (None: ``LBFGS_MAX_ITER``).
    init_scale : float
        Scale of the random start.

    Returns
    -------
    LoRAMLResult
        ``method="lbfgs"``.

    Notes
    -----
    scipy's L-BFGS-B on ``F(A, U) = sum_t L_t(A + Delta_t)`` with the gradient
    ``(sum_t G_t, dF/dU)``, ``G_t = 2 (W_t Sxx_t - Syx_t)``; the run ends at an absolute
    objective target (``EXACT_FTOL`` times the outputs' scale) or the iteration budget. The
    statistics are first brought to unit scale by powers of two (exact). The solver never
    reads ``A*`` or ``U*``: from a generic start it is the independent full-space solver.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=6, k=1, T=3, seed=1)
    >>> fit = fit_lbfgs(fam, k=1, seed=0)
    >>> fit.objective < 1e-10
    True
    """
    adapter, max_iter = check_problem(source, k, adapter, max_iter)
    A, factors, _ = _start(source, adapter, seed, A0, U0, V0, init_scale)
    stats = statistics(source)
    if isinstance(source, TaskData):
        BaseStep(stats)  # refuses an ill-conditioned pooled design before any work
    units = Units.of(stats)
    stats_n = units.normalise(stats)
    A_n, factors = A / units.model, units.factors_in(factors)
    shift = 0.0
    W_ls = least_squares_models(stats_n) if isinstance(source, TaskData) else None
    if W_ls is not None:
        stats_n, shift = centred(stats_n, W_ls), float(np.sum(task_losses(stats_n, W_ls)))
    budget = LBFGS_MAX_ITER if max_iter is None else max_iter
    with blas_threads_for(source.d):
        history = [summed_objective(stats_n, A_n, adapter.delta(factors))]
        A_n, factors, res = joint(stats_n, adapter, A_n, factors, budget,
                                  objective_target(np.sum(stats_n.syy)), history)
        history = [units.y**2 * (f + shift) for f in history]
        return make_result(stats, adapter, units.model * A_n, units.factors_out(factors),
                           history, res.nit, f"L-BFGS: {res.message}", "lbfgs")


# --------------------------------------------------------------------------- front door
def fit_lora_ml(
    source: Source,
    k: int | None = None,
    *,
    adapter: Adapter | str | int | None = None,
    method: str = "exact",
    reduce: bool = True,
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
        ``"exact"``: a population of identity input covariance with no ``U0`` is solved in the
        span of the offsets (:func:`fit_exact_span`, unless ``reduce=False``); anything else
        by variable projection (:func:`fit_exact_general`). ``"paper"``: the authors'
        block-coordinate gradient descent (:func:`fit_paper`). ``"lbfgs"``: L-BFGS jointly
        over the base and the factors (:func:`fit_lbfgs`).
    reduce : bool, default=True
        With ``False``, ``"exact"`` never uses the span reduction, which reads ``A*`` and
        ``U*``: the population is solved in the full space by variable projection, as an
        independent check of the fast path. The other methods never reduce.
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
        A non-integer ``k`` or ``max_iter``, a non-boolean ``reduce``.

    Notes
    -----
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
    >>> full = fit_lora_ml(fam, k=1, seed=0, reduce=False)  # never reads A* or U*
    >>> bool(np.linalg.norm(full.A - fam.A_star) < 1e-6)
    True
    """
    check_source(source)
    check_choice(method, "method", METHODS)
    check_choice(convention, "convention", CONVENTIONS)
    reduce = check_bool(reduce, "reduce")
    common = dict(adapter=adapter, seed=seed, U0=U0, V0=V0, max_iter=max_iter,
                  init_scale=init_scale)
    if method == "paper":
        return fit_paper(source, k, A0=A0, inner_steps=inner_steps, lr_U=lr_U, lr_A=lr_A,
                         convention=convention, **common)
    if method == "lbfgs":
        return fit_lbfgs(source, k, A0=A0, **common)
    if A0 is not None:
        check_array(A0, "A0", (source.d, source.d))
        raise ValueError(
            "A0 is not used by method='exact', which eliminates the base by its exact "
            "minimiser for the current factors: start the factors with U0 instead, or use "
            "method='lbfgs' or 'paper' to start from A0."
        )
    if reduce and isinstance(source, TaskFamily) and source.isotropic and U0 is None:
        if V0 is not None:
            raise ValueError("V0 needs U0: give both starting factors, or neither.")
        return fit_exact_span(source, k, adapter=adapter, max_iter=max_iter)
    return fit_exact_general(source, k, **common)
