"""The adaptation-scheme interface: a base, a new task and a parameter budget in, a model out.

Every scheme answers the same question: given a frozen retrained base ``A`` (d, d), an unseen
task and a budget of trainable parameters, which model ``W = A + Delta`` does it produce, and
how far is ``W`` from the new task (and, optionally, from the retraining tasks)? Budgets count
trainable parameters; a rank-r asymmetric adapter ``U V^T`` (``U, V`` of shape (d, r)) counts
``2 d r`` of them (:func:`lora_params`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lowrank_theory._repr import summary_repr
from lowrank_theory._validation import as_seed_generator, check_array, check_int
from lowrank_theory.adaptation import (  # the one reduced-rank regression, re-exported
    check_new_task,
    excess_loss,
    least_squares_update,
    reduced_rank_update,
)
from lowrank_theory.losses import Source, Statistics, excess_losses, statistics
from lowrank_theory.metrics import numerical_rank
from lowrank_theory.tasks import TaskData, TaskFamily

__all__ = [
    "AdaptationProblem",
    "AdaptationScheme",
    "SchemeResult",
    "Update",
    "lora_params",
    "least_squares_update",
    "reduced_rank_update",
    "residual_cross_covariance",
]

#: Singular values of an update below this fraction of its largest count as zero in
#: :attr:`SchemeResult.update_rank`: truncated SVDs and factor products leave exact zeros at
#: round-off (~1e-15), far below any fitted direction.
UPDATE_RANK_RTOL = 1e-9
#: Seeds are drawn below this bound when a Generator or None is given (numpy's seed range).
_SEED_BOUND = 2**63


def lora_params(d: int, rank: int) -> int:
    """Trainable parameters of a rank-``rank`` asymmetric adapter ``U V^T`` in dimension ``d``.

    Examples
    --------
    >>> lora_params(10, 4)
    80
    """
    return 2 * d * rank


def residual_cross_covariance(stats: Statistics, A: NDArray[np.float64]) -> NDArray[np.float64]:
    """``Syx - A Sxx`` of each task: minus half the loss gradient at the base ``A``.

    Parameters
    ----------
    stats : Statistics
        Statistics of shape (T, d, d).
    A : ndarray of shape (d, d)

    Returns
    -------
    ndarray of shape (T, d, d)
        In the population with identity covariance, ``W*_t - A``.
    """
    return stats.Syx - A @ stats.Sxx


@dataclass(frozen=True, eq=False)
class AdaptationProblem:
    """What a scheme sees: the base, the new task, its fitting data and the budget.

    Attributes
    ----------
    base : ndarray of shape (d, d)
        The frozen retrained base ``A``.
    task : TaskFamily
        The new task (T = 1); only its population is used to *score* the result.
    budget : int
        Trainable parameters allowed.
    n : int or None
        Fine-tuning samples (None: population).
    seed : int
        The seed the sample was drawn from: ``fine_tune(..., seed=seed)`` draws the same one.
    data : TaskData or None
        The sample (None for the population).
    stats : Statistics
        Statistics of the fitting data (sample or population), T = 1.
    rng : numpy.random.Generator
        Generator positioned after the sample, for random starts.
    preserve : Statistics or None
        Statistics of the tasks whose loss should not grow (the retraining tasks).
    """

    base: NDArray[np.float64]
    task: TaskFamily
    budget: int
    n: int | None
    seed: int
    data: TaskData | None
    stats: Statistics
    rng: np.random.Generator
    preserve: Statistics | None

    @property
    def d(self) -> int:
        """Dimension."""
        return self.task.d

    def max_rank(self, reserved: int = 0, minimum: int = 1) -> int:
        """Largest adapter rank the budget pays for after ``reserved`` parameters (at most d).

        Raises
        ------
        ValueError
            If that rank is below ``minimum``.
        """
        rank = min((self.budget - reserved) // lora_params(self.d, 1), self.d)
        if rank < minimum:
            need = reserved + lora_params(self.d, minimum)
            raise ValueError(
                f"budget must be >= {need} parameters here ({reserved} reserved + 2 d r with "
                f"d={self.d}, r={minimum}), got budget={self.budget}."
            )
        return rank


class Update(NamedTuple):
    """What :meth:`AdaptationScheme.update` returns."""

    delta: NDArray[np.float64]
    params: int
    info: dict[str, Any]


@dataclass(frozen=True, eq=False)
class SchemeResult:
    """Result of :meth:`AdaptationScheme.adapt`.

    Attributes
    ----------
    scheme : str
        The scheme's label.
    W : ndarray of shape (d, d)
        The adapted weights ``A + Delta``.
    delta : ndarray of shape (d, d)
        The update ``Delta``.
    params : int
        Trainable parameters used (at most the budget).
    budget : int
        The budget granted.
    loss : float
        Excess population loss on the new task, ``||(W - W*) Sigma^{1/2}||_F^2``.
    preserve_loss : ndarray of shape (T,) or None
        Excess loss of ``W`` on each preserved (retraining) task; None without ``preserve``.
    base_preserve_loss : ndarray of shape (T,) or None
        The same for the base ``A`` alone.
    n : int or None
        Fine-tuning samples (None: population).
    info : dict
        Scheme-specific values (rank, interpolation weight, mixture weights, ...).
    """

    scheme: str
    W: NDArray[np.float64]
    delta: NDArray[np.float64]
    params: int
    budget: int
    loss: float
    preserve_loss: NDArray[np.float64] | None
    base_preserve_loss: NDArray[np.float64] | None
    n: int | None
    info: dict[str, Any]

    def __repr__(self) -> str:
        return summary_repr(type(self).__name__, {
            "scheme": self.scheme, "n": self.n, "budget": self.budget, "params": self.params,
            "loss": self.loss, "forgetting": self.forgetting, "update_rank": self.update_rank,
            "W": self.W})

    @property
    def forgetting(self) -> float | None:
        """Mean increase of the preserved tasks' loss over the base's: ``mean_t (L_t(W) - L_t(A))``."""
        if self.preserve_loss is None:
            return None
        return float(np.mean(self.preserve_loss - self.base_preserve_loss))

    @property
    def update_rank(self) -> int:
        """Numerical rank of ``Delta`` (singular values above ``UPDATE_RANK_RTOL * s_max``)."""
        return numerical_rank(self.delta, rtol=UPDATE_RANK_RTOL)


def _as_seed(seed: int | np.random.Generator | None) -> int:
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        as_seed_generator(seed)  # validates the sign
        return int(seed)
    return int(as_seed_generator(seed).integers(_SEED_BOUND))


class AdaptationScheme(ABC):
    """A way to adapt a frozen base to a new task within a budget of trainable parameters.

    A scheme is a small frozen dataclass of hyperparameters. :meth:`adapt` validates the
    inputs, draws the fine-tuning sample, calls :meth:`update` (the one method a new scheme
    implements, with its formula in the docstring) and scores the result.
    """

    #: Short name; :attr:`label` adds the hyperparameters that tell instances apart.
    name: ClassVar[str] = ""

    @property
    def label(self) -> str:
        """Name shown in tables and figures."""
        return self.name

    def rank_budget(self, rank: int, d: int) -> int:
        """Parameters the scheme needs for an adapter of rank ``rank`` (default ``2 d rank``)."""
        return lora_params(d, rank)

    def min_budget(self, d: int) -> int:
        """Smallest budget the scheme accepts in dimension ``d``."""
        return self.rank_budget(1, d)

    @abstractmethod
    def update(self, problem: AdaptationProblem) -> Update:
        """Compute the update ``Delta``, the parameters it used and scheme-specific numbers."""

    def adapt(
        self,
        base: ArrayLike,
        task: TaskFamily,
        budget: int,
        *,
        n: int | None = None,
        seed: int | np.random.Generator | None = None,
        preserve: Source | None = None,
    ) -> SchemeResult:
        """Adapt ``base`` to ``task`` with at most ``budget`` trainable parameters.

        Parameters
        ----------
        base : array_like of shape (d, d)
            The frozen retrained base ``A``.
        task : TaskFamily with T = 1
            The new task, e.g. ``fam.new_task(seed)``.
        budget : int
            Trainable parameters allowed (a rank-r ``U V^T`` adapter counts ``2 d r``).
        n : int, optional
            Fine-tuning samples drawn from ``seed``; None fits on the population.
        seed : int, Generator or None
            Source of the sample (drawn first, as :func:`lowrank_theory.fine_tune` does: the
            same int seed gives the same sample to every scheme) and of random starts.
        preserve : TaskFamily or TaskData, optional
            The retraining tasks: the result then reports the excess loss of ``W`` on each
            of them (population) or its empirical loss (sample).

        Returns
        -------
        SchemeResult

        Raises
        ------
        TypeError, ValueError
            A task that is not a one-task TaskFamily, a base of the wrong shape, a budget
            below :meth:`min_budget`, ``n < 1``, a ``preserve`` of another dimension.
        """
        task = check_new_task(task)
        d = task.d
        A = check_array(base, "base", (d, d))
        budget = check_int(budget, "budget")
        if budget < self.min_budget(d):
            raise ValueError(
                f"budget must be >= {self.min_budget(d)} parameters for {self.label} with "
                f"d={d}, got {budget}."
            )
        pres = None
        if preserve is not None:
            if not isinstance(preserve, (TaskFamily, TaskData)):
                raise TypeError(
                    "preserve must be a TaskFamily or TaskData of the retraining tasks, got "
                    f"{type(preserve).__name__}."
                )
            if preserve.d != d:
                raise ValueError(f"preserve must have dimension d={d}, got d={preserve.d}.")
            pres = statistics(preserve)
        seed_int = _as_seed(seed)
        rng = np.random.default_rng(seed_int)
        data = None if n is None else task.sample(check_int(n, "n"), seed=rng)
        stats = statistics(task if data is None else data)
        problem = AdaptationProblem(A, task, budget, n, seed_int, data, stats, rng, pres)
        delta, params, info = self.update(problem)
        W = A + delta
        base_pres = None if pres is None else excess_losses(pres, A)
        return SchemeResult(
            self.label,
            W,
            delta,
            int(params),
            budget,
            excess_loss(task, W),
            None if pres is None else excess_losses(pres, W),
            base_pres,
            n,
            dict(info),
        )
