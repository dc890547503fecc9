"""What every LoRA-ML solver method shares: the problem's validation and the result type.

The result is judged from the answer (its stationarity), whatever the solver's own stopping
test said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lowrank_theory._repr import summary_repr
from lowrank_theory._validation import check_int
from lowrank_theory.adapters import Adapter, Factors, as_adapter
from lowrank_theory.losses import Source, Statistics
from lowrank_theory.objective import check_source, stationarity
from lowrank_theory.retraining import check_pooled_design

__all__ = ["LoRAMLResult", "make_result", "check_problem", "STATIONARITY_RTOL"]

#: A fit has converged when its gradient norm is at most ``STATIONARITY_RTOL`` times the size
#: of the terms that cancel in it (see :func:`stationarity`). The exact and L-BFGS solvers end
#: between 1e-16 and 1.1e-10 (30 random problems each of samples, populations and general
#: covariances); the paper protocol, 3000 rounds at d=10, T=3, N=5000, ends at 3.5e-7 under
#: its own convention. 1e-9 lies between, with room on both sides.
STATIONARITY_RTOL = 1e-9

@dataclass(frozen=True, eq=False)
class LoRAMLResult:
    """Result of :func:`~lowrank_theory.lora_ml.fit_lora_ml`, in the spirit of ``scipy.optimize.OptimizeResult``.

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


def make_result(
    stats: Statistics | None, adapter: Adapter, A: NDArray[np.float64], factors: Factors,
    history: Sequence[float], n_iter: int, message: str, method: str, diverged: bool = False,
    gradient: tuple[float, float] | None = None,
) -> LoRAMLResult:
    """The result of a solver, judged from its answer.

    Parameters
    ----------
    stats : Statistics or None
        The problem's statistics, to compute the answer's stationarity; None with ``gradient``.
    adapter : Adapter
    A : ndarray of shape (d, d)
    factors : tuple of ndarray of shape (T, d, r)
    history : sequence of float
        Objective at the start and after each iteration.
    n_iter : int
    message : str
        What stopped the solver; the stationarity verdict is appended.
    method : str
    diverged : bool, default=False
        A diverged run is never converged (its stationarity is NaN).
    gradient : (float, float), optional
        ``(grad_norm, relative)`` computed by the solver, instead of from ``stats``.

    Returns
    -------
    LoRAMLResult
        ``converged`` when ``relative <= STATIONARITY_RTOL`` and the run did not diverge.

    Examples
    --------
    The truth is stationary; a nudged base is not, whatever the message says:

    >>> from lowrank_theory import TaskFamily
    >>> from lowrank_theory.adapters import SymmetricAdapter
    >>> from lowrank_theory.losses import statistics
    >>> fam = TaskFamily.random(d=4, k=1, T=3, seed=0)
    >>> args = (statistics(fam), SymmetricAdapter(1))
    >>> make_result(*args, fam.A_star, (fam.U_star,), [0.0], 0, "truth", "stub").converged
    True
    >>> make_result(*args, fam.A_star + 1e-3, (fam.U_star,), [0.0], 0, "done", "stub").converged
    False
    """
    if gradient is None:
        with np.errstate(over="ignore", invalid="ignore"):
            gradient = stationarity(stats, adapter, A, factors)
    grad_norm, relative = gradient
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


def check_problem(source: Source, k: int | None, adapter: Adapter | str | int | None,
             max_iter: int | None) -> tuple[Adapter, int | None]:
    """Validate what every LoRA-ML method shares; return the adapter and ``max_iter``.

    Raises
    ------
    TypeError
        A source that is neither a TaskFamily nor a TaskData; a non-integer ``k`` or
        ``max_iter``.
    ValueError
        Neither ``k`` nor ``adapter``; an adapter rank above ``d``; a sample with fewer
        pooled samples than dimensions; a negative ``max_iter``.
    """
    check_source(source)
    if adapter is None and k is None:
        raise ValueError("give the adapter rank k (or an adapter).")
    if k is not None:
        k = check_int(k, "k")
    adapter = as_adapter(k) if adapter is None else as_adapter(adapter, k)
    adapter.check_rank(source.d)
    check_pooled_design(source)
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter", minimum=0)
    return adapter, max_iter
