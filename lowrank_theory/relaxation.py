"""A convex baseline for LoRA-ML: the trace (nuclear-norm) relaxation, solved with cvxpy.

LoRA-ML constrains each task's update to ``U_t U_t^T``: positive semi-definite *and* of rank
at most ``k``. Dropping the rank constraint and penalising the trace instead -- the nuclear
norm of a PSD matrix, the convex envelope of the rank on the spectral-norm ball -- gives

    min_{A, D_1..D_T}  sum_t L_t(A + D_t) + lam * sum_t tr(D_t)   s.t.  D_t >= 0 (PSD),

a semidefinite program. Two uses:

- a baseline estimator of ``A*`` to compare with LoRA-ML (it needs no rank and no start);
- with ``lam = 0`` its optimal value is a *lower bound* on the LoRA-ML objective over
  symmetric adapters of any rank (every ``U_t U_t^T`` is a feasible ``D_t``), so the gap
  ``F(A^, U^) - bound`` certifies how far a non-convex solution can be from the global value.

The loss is written by completing the square, ``L_t(W) = ||(W - B_t) Sxx_t^{1/2}||_F^2 + c_t``
with ``B_t = Syx_t Sxx_t^+`` the task's least-squares model, so the solver sees a sum of squares
whose minimum is near zero instead of a difference of large numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lowrank_theory._validation import check_float
from lowrank_theory.adapters import SymmetricAdapter
from lowrank_theory.covariance import covariance_sqrt
from lowrank_theory.lora_ml import lora_ml_objective
from lowrank_theory.losses import Source, Statistics, statistics
from lowrank_theory.metrics import numerical_rank
from lowrank_theory.tasks import TaskData, TaskFamily

__all__ = [
    "RelaxationResult",
    "trace_relaxation",
    "lora_ml_lower_bound",
    "RANK_RTOL",
    "LOWER_BOUND_RTOL",
]

#: Eigenvalues of ``D_t`` below ``RANK_RTOL * ||D_t||_2`` count as zero when reporting its rank:
#: interior-point solvers stop ~1e-8 (relative) short of the boundary of the PSD cone.
RANK_RTOL = 1e-5
#: The bound subtracts ``LOWER_BOUND_RTOL * value_scale`` from the solver's optimal value, a
#: margin for the solver's own stopping tolerance (Clarabel's default relative gap is 1e-8).
LOWER_BOUND_RTOL = 1e-7


@dataclass(frozen=True, eq=False)
class RelaxationResult:
    """Solution of :func:`trace_relaxation`.

    Attributes
    ----------
    A : ndarray of shape (d, d)
        Relaxed estimate of the base.
    D : ndarray of shape (T, d, d)
        Per-task PSD updates.
    lam : float
        Trace penalty.
    loss : float
        The data-fit part ``sum_t L_t(A + D_t)`` in the convention of
        :func:`~lowrank_theory.lora_ml.lora_ml_objective` (population: excess loss), evaluated
        by the core with ``D_t`` factored as ``U_t U_t^T``.
    objective : float
        ``loss + lam * sum_t tr(D_t)``.
    ranks : ndarray of shape (T,)
        Numerical ranks of the ``D_t`` (threshold ``RANK_RTOL``).
    status : str
        cvxpy's status (``"optimal"`` on success).
    solver : str
        The solver used.
    solver_value : float
        The solver's optimal value (same convention as ``objective``).
    """

    A: NDArray[np.float64]
    D: NDArray[np.float64]
    lam: float
    loss: float
    objective: float
    ranks: NDArray[np.int64]
    status: str
    solver: str
    solver_value: float

    @property
    def factors(self) -> NDArray[np.float64]:
        """``U`` of shape (T, d, d) with ``U_t U_t^T = D_t`` (negative round-off clipped)."""
        return _psd_factors(self.D)


def _psd_factors(D: NDArray[np.float64]) -> NDArray[np.float64]:
    # The PSD part of sym(D) at full rank: the symmetric adapter's projection keeps all d.
    return SymmetricAdapter(D.shape[-1]).project(D)[0]


def _square_completion(stats: Statistics) -> tuple[NDArray, NDArray, float]:
    """``(B_t, Sxx_t^{1/2}, sum_t c_t - offset)`` with ``L_t(W) = ||(W - B_t) Sxx_t^{1/2}||^2 + c_t``.

    The pseudo-inverse ``Sxx^+ = (Sxx^{1/2})^+ (Sxx^{1/2})^+``
    (:func:`~lowrank_theory.covariance.covariance_sqrt`) keeps this exact for a singular sample
    design: the columns of ``Sxy`` lie in the range of ``Sxx``, so ``Sxx Sxx^+ Sxy = Sxy``.
    """
    roots, inv_roots = covariance_sqrt(stats.Sxx)
    B = stats.Syx @ inv_roots @ inv_roots
    const = np.sum(stats.syy - np.sum((B @ stats.Sxx) * B, axis=(-1, -2)))
    return B, roots, float(const) - stats.offset


def trace_relaxation(
    source: Source,
    lam: float = 0.0,
    *,
    solver: str | None = None,
) -> RelaxationResult:
    """Solve the trace-penalised convex relaxation of LoRA-ML.

    Parameters
    ----------
    source : TaskFamily or TaskData
        Population or sample.
    lam : float, default=0.0
        Trace penalty ``lam >= 0`` (0: the pure relaxation, whose value bounds LoRA-ML below).
    solver : str, optional
        A cvxpy solver name (default: Clarabel when installed, else cvxpy's choice).

    Returns
    -------
    RelaxationResult

    Raises
    ------
    TypeError
        If ``source`` is not a TaskFamily or TaskData.
    ValueError
        Negative ``lam``.
    RuntimeError
        If the solver fails (status not optimal or optimal_inaccurate).

    Notes
    -----
    Solves ``min_{A, D_t PSD} sum_t ||(A + D_t - B_t) Sxx_t^{1/2}||_F^2 + lam sum_t tr(D_t)``
    (the loss by square completion, see the module docstring). For ``lam -> 0`` the solution
    tends to the maximal-trace base ``A`` with ``W*_t - A`` PSD for every task (population),
    which is ``A*`` exactly when no non-zero ``C`` with ``tr C >= 0`` satisfies
    ``C <= U*_t U*_t^T`` for all ``t``; for ``T >= 3`` tasks with linearly independent offset
    columns that holds, while for ``T = 2`` the hyperbolic family can beat ``A*``.

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.orthonormal(d=4, k=1, T=3, seed=0)
    >>> res = trace_relaxation(fam, lam=1e-3)
    >>> res.status
    'optimal'
    """
    import cvxpy as cp  # heavy import, only when the relaxation is used

    if not isinstance(source, (TaskFamily, TaskData)):
        raise TypeError(
            f"source must be a TaskFamily or TaskData, got {type(source).__name__}."
        )
    lam = check_float(lam, "lam", minimum=0.0)
    stats = statistics(source)
    T, d = stats.T, stats.d
    B, roots, const = _square_completion(stats)
    if solver is None:
        solver = "CLARABEL" if "CLARABEL" in cp.installed_solvers() else None
    A = cp.Variable((d, d), name="A")
    D = [cp.Variable((d, d), PSD=True, name=f"D{t}") for t in range(T)]
    fit = sum(cp.sum_squares((A + D[t] - B[t]) @ roots[t]) for t in range(T))
    penalty = sum(cp.trace(Dt) for Dt in D)
    problem = cp.Problem(cp.Minimize(fit + lam * penalty))
    problem.solve(solver=solver)
    if problem.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"the SDP solver returned status {problem.status!r}.")
    A_hat = np.asarray(A.value, dtype=np.float64)
    D_hat = np.stack([0.5 * (Dt.value + Dt.value.T) for Dt in D])
    factors = _psd_factors(D_hat)
    loss = lora_ml_objective(source, A_hat, factors)
    trace = float(np.trace(D_hat, axis1=1, axis2=2).sum())
    ranks = np.array([numerical_rank(Dt, rtol=RANK_RTOL) if np.any(Dt) else 0 for Dt in D_hat])
    used = problem.solver_stats.solver_name if problem.solver_stats is not None else str(solver)
    return RelaxationResult(
        A_hat, D_hat, lam, loss, loss + lam * trace, ranks, str(problem.status), str(used),
        float(problem.value) + const,
    )


def lora_ml_lower_bound(source: Source, *, solver: str | None = None) -> float:
    """A lower bound on the LoRA-ML objective over symmetric adapters of any rank.

    Parameters
    ----------
    source : TaskFamily or TaskData
    solver : str, optional
        cvxpy solver name.

    Returns
    -------
    float
        ``value(lam = 0 relaxation) - LOWER_BOUND_RTOL * value_scale`` with
        ``value_scale = max(1, sum_t syy_t)``.

    Notes
    -----
    Every ``(A, U)`` gives a feasible point ``(A, D_t = U_t U_t^T)`` of the relaxation, so
    ``min F <= F(A, U)`` is bounded below by the relaxation's value; the margin covers the
    solver's stopping tolerance. For a realisable population the bound is 0 (up to the
    margin); on a sample it sits below the LoRA-ML minimum by at most the extra noise the
    unconstrained-rank ``D_t`` can fit.
    """
    res = trace_relaxation(source, 0.0, solver=solver)
    scale = max(1.0, float(np.sum(statistics(source).syy)))
    return min(res.solver_value, res.loss) - LOWER_BOUND_RTOL * scale
