"""Fine-tuning a retrained base on an unseen task with a rank-r adapter."""

from __future__ import annotations

from collections.abc import Sequence
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
from lowrank_theory.adapters import Adapter, AsymmetricAdapter, Factors, as_adapter
from lowrank_theory.covariance import covariance_sqrt
from lowrank_theory.lora_ml import LoRAMLResult
from lowrank_theory.losses import Statistics, excess_losses, loss_gradient, statistics, task_losses
from lowrank_theory.paper_protocol import CONVENTIONS, step_scales
from lowrank_theory.tasks import TaskFamily

__all__ = [
    "FineTuneResult",
    "fine_tune",
    "adapter_gradient_descent",
    "excess_loss",
    "check_new_task",
    "least_squares_update",
    "reduced_rank_update",
    "FINE_TUNE_METHODS",
    "PAPER_FT_LR",
    "PAPER_FT_INIT_SCALE",
]

#: Fine-tuning solvers.
FINE_TUNE_METHODS = ("exact", "gd")
#: The paper's fine-tuning step size and the scale of its random start.
PAPER_FT_LR = 0.005
PAPER_FT_INIT_SCALE = 0.1
#: Gradient descent counts as diverged when its excess loss ends this many times above the
#: problem's scale (its start, the base's excess loss, the noise): a converging run ends below
#: it, while a step beyond the stability limit grows the loss geometrically, past any factor.
DIVERGENCE_RATIO = 1e8


@dataclass(frozen=True, eq=False)
class FineTuneResult:
    """Result of :func:`fine_tune`.

    Attributes
    ----------
    delta : ndarray of shape (d, d)
        The fitted update ``Delta`` (the adapted model is ``A + Delta``).
    U, V : ndarray of shape (d, r)
        Factors: ``Delta = U V^T`` (``V`` is ``U`` for a symmetric adapter).
    loss : float
        Excess population test loss ``||(A + Delta - W*) Sigma^{1/2}||_F^2`` on the new task.
    history : ndarray of shape (steps + 1,)
        Excess test loss along gradient descent (``method="gd"``); the single final value
        otherwise.
    method : str
    adapter : Adapter
    n : int or None
        Samples used (None: population).
    """

    delta: NDArray[np.float64]
    U: NDArray[np.float64]
    V: NDArray[np.float64]
    loss: float
    history: NDArray[np.float64]
    method: str
    adapter: Adapter
    n: int | None

    def __repr__(self) -> str:
        steps = {"steps": len(self.history) - 1} if self.method == "gd" else {}
        return summary_repr(type(self).__name__, {
            "method": self.method, "adapter": self.adapter, "n": self.n, "loss": self.loss,
            **steps, "delta": self.delta})


def _diverged(lr: float, what: str) -> None:
    raise ValueError(
        f"gradient descent diverged with lr={lr:g}: {what}. Take a smaller step, e.g. "
        f"lr={lr / 10:g} (the paper's is {PAPER_FT_LR}); the largest stable step shrinks as "
        "the input covariance and |W* - A| grow, or use method='exact'."
    )


def adapter_gradient_descent(
    A: NDArray[np.float64],
    stats: Statistics,
    adapter: Adapter,
    start: Factors,
    steps: int,
    lr: float,
    convention: str = "paper",
    record: Sequence[int] | None = None,
) -> tuple[Factors, NDArray[np.float64]]:
    """Gradient descent on an adapter's factors over a frozen base, for one run or a batch.

    The one fine-tuning loop: :func:`fine_tune` (``method="gd"``) runs it for one run, the
    vary experiment for a batch of runs along leading axes (every step advances all of them).

    Parameters
    ----------
    A : ndarray of shape (..., d, d)
        Frozen bases.
    stats : Statistics
        Statistics of the new task (T = 1), shape (..., 1, d, d) (or (1, d, d), shared).
    adapter : Adapter
    start : tuple of ndarray of shape (..., d, r)
        Starting factors, ``(U,)`` or ``(U, V)`` as the adapter has.
    steps : int
        Gradient steps.
    lr : float
        Step size.
    convention : {"paper", "sum"}, default="paper"
        ``"paper"``: steps on half the mean squared error (the authors'); ``"sum"``: on the mean
        squared error itself (steps twice as long).
    record : sequence of int, optional
        Increasing iterations in ``[0, steps]`` at which to record the update; default every
        iteration ``0..steps``. The loop stops at the last one.

    Returns
    -------
    factors : tuple of ndarray of shape (..., d, r)
        The factors at the last recorded iteration.
    deltas : ndarray of shape (len(record), ..., d, d)
        The update ``Delta`` at each recorded iteration.

    Raises
    ------
    ValueError
        If the factors overflow (the step is beyond the stability limit); the message names
        the step and suggests a smaller ``lr``. A ``record`` that is not increasing within
        ``[0, steps]``.

    Notes
    -----
    With ``G = dL/dW = 2 (W Sxx - Syx)`` at ``W = A + Delta``, one step is
    ``F <- F - c lr dL/dF`` for every factor ``F`` (``dL/dU = G V``, ``dL/dV = G^T U`` for
    ``Delta = U V^T``; ``(G + G^T) U`` for ``Delta = U U^T``), both from the old factors, with
    ``c = 1/2`` for ``"paper"`` and ``c = 1`` for ``"sum"``
    (:func:`~lowrank_theory.paper_protocol.step_scales`).

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank_theory import TaskFamily
    >>> from lowrank_theory.adapters import AsymmetricAdapter
    >>> from lowrank_theory.losses import statistics
    >>> new = TaskFamily.random(d=4, k=1, T=1, seed=0)
    >>> start = AsymmetricAdapter(1).init_factors(1, 4, np.random.default_rng(1))
    >>> _, deltas = adapter_gradient_descent(new.A_star, statistics(new), AsymmetricAdapter(1),
    ...                                      start, steps=2000, lr=0.05, record=[0, 2000])
    >>> bool(np.allclose(deltas[-1], new.offsets, atol=1e-6))
    True
    """
    step = step_scales(convention, 1)[0] * lr
    record = range(steps + 1) if record is None else [int(r) for r in record]
    if not record or record[0] < 0 or record[-1] > steps or any(
            b <= a for a, b in zip(record, record[1:])):
        raise ValueError(f"record must be increasing iterations in [0, steps={steps}], "
                         f"got {list(record)}.")
    A = A[..., None, :, :]
    factors = tuple(f[..., None, :, :] for f in start)
    deltas = np.empty((len(record), *np.broadcast_shapes(A.shape, stats.Sxx.shape)))
    j = 0
    # Overflow is detected below and reported as divergence, not as numpy warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(steps + 1):
            delta = adapter.delta(factors)
            if s == record[j]:
                deltas[j] = delta
                j += 1
                if j == len(record):
                    break
            grads = adapter.factor_gradients(factors, loss_gradient(stats, A + delta))
            factors = tuple(f - step * g for f, g in zip(factors, grads))
            if not all(np.isfinite(f).all() for f in factors):
                _diverged(lr, f"its factors overflowed at step {s + 1} of {steps}")
    return tuple(f[..., 0, :, :] for f in factors), deltas[..., 0, :, :]


def excess_loss(task: TaskFamily, W: ArrayLike) -> float:
    """Excess population loss of a model on a one-task family, ``||(W - W*) Sigma^{1/2}||_F^2``.

    Parameters
    ----------
    task : TaskFamily with T = 1
    W : array_like of shape (d, d) or (..., d, d)

    Returns
    -------
    float (or ndarray of shape (...) for a batch of models)
    """
    stats = statistics(task)
    W = np.asarray(W, dtype=np.float64)
    out = excess_losses(stats, W[..., None, :, :])[..., 0]
    return float(out) if out.ndim == 0 else out


def _exact_population(A: NDArray, task: TaskFamily, adapter: Adapter, rng) -> Factors:
    M = task.W_star[0] - A
    if task.isotropic:
        return adapter.project(M)
    if isinstance(adapter, AsymmetricAdapter):
        # min ||(M - Delta) S^{1/2}||: truncate M S^{1/2}, then undo the whitening on the right.
        root, inv_root = covariance_sqrt(task.task_covariances()[0])
        U, V = adapter.project(M @ root)
        return (U, inv_root @ V)
    return _lbfgs_factors(statistics(task), A, adapter, adapter.project(M), rng)


def _lbfgs_factors(stats: Statistics, A: NDArray, adapter: Adapter, start: Factors, rng) -> Factors:
    """Minimise one task's loss over the adapter factors with the base held fixed."""
    shape = start[0].shape
    size = int(np.prod(shape))
    # A zero factor is a stationary point of the symmetric loss: nudge the start off it.
    x0 = np.concatenate([f.ravel() for f in start]) + 1e-6 * rng.standard_normal(size * len(start))

    def fun(x: NDArray) -> tuple[float, NDArray]:
        fac = tuple(x[i * size : (i + 1) * size].reshape(shape) for i in range(len(start)))
        W = A + adapter.delta(tuple(f[None] for f in fac))[0]
        G = loss_gradient(stats, W[None])[0]
        grads = adapter.factor_gradients(fac, G)
        return float(task_losses(stats, W[None])[0]), np.concatenate([g.ravel() for g in grads])

    res = scipy.optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12},
    )
    return tuple(res.x[i * size : (i + 1) * size].reshape(shape) for i in range(len(start)))


def least_squares_update(stats: Statistics, A: NDArray[np.float64]) -> NDArray[np.float64]:
    """Full-rank least-squares update of one task: ``argmin_Delta L^(A + Delta)``.

    Parameters
    ----------
    stats : Statistics
        One task's statistics (T = 1).
    A : ndarray of shape (d, d)

    Returns
    -------
    ndarray of shape (d, d)
        ``Delta = (Sxx^+ (Sxy - Sxx A^T))^T``; with fewer samples than dimensions, the
        minimum-norm solution.
    """
    B, *_ = scipy.linalg.lstsq(stats.Sxx[0], stats.Sxy[0] - stats.Sxx[0] @ A.T)
    return B.T


def reduced_rank_update(
    stats: Statistics, A: NDArray[np.float64], rank: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Reduced-rank regression: the best rank-``rank`` update and the salience of each direction.

    Parameters
    ----------
    stats : Statistics
        One task's statistics (T = 1).
    A : ndarray of shape (d, d)
        The frozen base.
    rank : int
        ``0 <= rank <= d``.

    Returns
    -------
    delta : ndarray of shape (d, d)
        ``argmin_{rank(Delta) <= rank} L^(A + Delta)``.
    salience : ndarray of shape (d,)
        Eigenvalues ``lambda_1 >= ... >= lambda_d`` of ``B^T Sxx B``: keeping direction ``i``
        lowers the empirical loss by exactly ``lambda_i``.

    Notes
    -----
    With ``B = Sxx^+ (Sxy - Sxx A^T)`` the full least-squares coefficients (``Delta_LS = B^T``),
    the rank-r solution is ``Delta_r = (B V_r V_r^T)^T`` with ``V_r`` the top-r eigenvectors of
    the fitted values' Gram matrix ``B^T Sxx B`` (Anderson's reduced-rank regression), and
    ``L^(A + Delta_r) = L^(A + Delta_LS) + sum_{i > r} lambda_i``.
    """
    B = least_squares_update(stats, A).T
    lam, vec = scipy.linalg.eigh(B.T @ stats.Sxx[0] @ B)
    lam, vec = lam[::-1], vec[:, ::-1]
    Vr = vec[:, :rank]
    return (B @ Vr @ Vr.T).T, np.clip(lam, 0.0, None)


def check_new_task(task: object, name: str = "task") -> TaskFamily:
    """Return ``task`` if it is a one-task :class:`TaskFamily` (the new task), else raise.

    Raises
    ------
    TypeError
        If ``task`` is not a TaskFamily.
    ValueError
        If it holds more than one task.
    """
    if not isinstance(task, TaskFamily):
        raise TypeError(
            f"{name} must be a TaskFamily (use fam.new_task()), got {type(task).__name__}."
        )
    if task.T != 1:
        raise ValueError(
            f"{name} must hold exactly one task (T=1), got T={task.T}; use fam.new_task()."
        )
    return task


def fine_tune(
    A: ArrayLike | LoRAMLResult,
    task: TaskFamily,
    rank: int = 1,
    n: int | None = None,
    seed: int | np.random.Generator | None = None,
    adapter: Adapter | str = "asymmetric",
    method: str = "exact",
    steps: int = 1000,
    lr: float = PAPER_FT_LR,
    init_scale: float = PAPER_FT_INIT_SCALE,
    convention: str = "paper",
) -> FineTuneResult:
    """Fit a rank-r adapter on top of a frozen base for a new task.

    Parameters
    ----------
    A : array_like of shape (d, d), or LoRAMLResult
        The retrained base (held fixed); a :func:`~lowrank_theory.fit_lora_ml` result stands
        for its base ``fit.A``.
    task : TaskFamily with T = 1
        The unseen task, e.g. ``fam.new_task(seed)``.
    rank : int, default=1
        Adapter rank ``r <= d``.
    n : int, optional
        Fine-tuning samples; None means the population (infinite samples).
    seed : int, Generator or None
        Source of the sample (drawn first) and of the random start of ``"gd"`` (drawn second):
        the same seed gives the same sample and start for every base, as the paper's shared
        start between SR and LoRA-ML.
    adapter : {"asymmetric", "symmetric"} or Adapter, default="asymmetric"
        ``U V^T`` (the paper's fine-tuning) or ``U U^T``.
    method : {"exact", "gd"}, default="exact"
        ``"exact"``: population: Eckart-Young truncation of ``W* - A`` (asymmetric) or the best
        PSD rank-r approximation of its symmetric part (symmetric), whitened by ``Sigma^{1/2}``
        for a general covariance; sample: reduced-rank regression (asymmetric) or L-BFGS
        (symmetric). ``"gd"``: the paper's gradient descent on the (empirical) loss from a
        random start with i.i.d. ``N(0, init_scale^2)`` factors, ``steps`` steps of size ``lr``.
    steps, lr, init_scale
        Gradient-descent schedule (``method="gd"``).
    convention : {"paper", "sum"}, default="paper"
        Loss of the ``"gd"`` steps (see Notes): ``"paper"`` half the mean squared error, as
        the authors' script; ``"sum"`` the mean squared error itself, whose steps are twice
        as long (its step ``i`` is close to the authors' step ``2i`` for small ``lr``).

    Returns
    -------
    FineTuneResult
        With ``loss`` the excess population test loss on ``task``.

    Raises
    ------
    ValueError
        ``task`` with ``T != 1``, wrong shape of ``A``, ``rank > d``, ``n < 1``, unknown method
        or convention; or gradient descent that diverged (its factors overflowed, or its loss
        ended ``DIVERGENCE_RATIO`` times above the problem's scale): the message suggests a
        smaller ``lr``.

    Notes
    -----
    With ``L(W) = (1/n) sum_i ||y_i - W x_i||^2`` (the population loss for ``n=None``) and
    ``G = dL/dW = 2 (W Sxx - Syx)`` at ``W = A + U V^T``, one ``"gd"`` step is

        U <- U - c lr G V,    V <- V - c lr G^T U    (both from the old U, V),

    with ``c = 1/2`` for ``"paper"`` (the gradient of ``L / 2``) and ``c = 1`` for ``"sum"``;
    for a symmetric adapter ``U <- U - c lr (G + G^T) U``.

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> fam = TaskFamily.random(d=6, k=1, T=3, seed=0)
    >>> new = fam.new_task(seed=1)
    >>> fine_tune(fam.A_star, new, rank=1).loss < 1e-20
    True
    """
    check_new_task(task)
    d = task.d
    if isinstance(A, LoRAMLResult):
        A = A.A
    A = check_array(A, "A", (d, d))
    adapter = as_adapter(adapter, rank)
    adapter.check_rank(d)
    check_choice(method, "method", FINE_TUNE_METHODS)
    check_choice(convention, "convention", CONVENTIONS)
    rng = as_seed_generator(seed)
    stats = statistics(task if n is None else task.sample(check_int(n, "n"), seed=rng))

    if method == "exact":
        with blas_threads_for(d):
            if n is None:
                factors = _exact_population(A, task, adapter, rng)
            elif isinstance(adapter, AsymmetricAdapter):
                factors = adapter.project(reduced_rank_update(stats, A, adapter.rank)[0])
            else:
                start = adapter.project(np.swapaxes(stats.Sxy[0], 0, 1) - A)
                factors = _lbfgs_factors(stats, A, adapter, start, rng)
        delta = adapter.delta(tuple(f[None] for f in factors))[0]
        loss = excess_loss(task, A + delta)
        history = np.array([loss])
    else:
        steps = check_int(steps, "steps", minimum=0)
        lr = check_float(lr, "lr", strict=True)
        init_scale = check_float(init_scale, "init_scale", strict=True)
        start = tuple(f[0] for f in adapter.init_factors(1, d, rng, init_scale))
        with blas_threads_for(d):
            factors, deltas = adapter_gradient_descent(A, stats, adapter, start, steps, lr,
                                                       convention)
        delta = deltas[-1]
        with np.errstate(over="ignore", invalid="ignore"):
            history = np.atleast_1d(excess_loss(task, A + deltas))
        # The scale a converging run stays within: its start, the base's own excess loss,
        # and the noise a sample fit may add (sigma^2 per entry of a d x d update).
        scale = max(history[0], excess_loss(task, A), task.sigma**2 * d * d)
        if history[-1] > DIVERGENCE_RATIO * scale:
            _diverged(lr, f"its excess loss grew from {history[0]:.3g} to {history[-1]:.3g} "
                          f"in {steps} steps")
        loss = float(history[-1])
    U = factors[0]
    V = factors[-1]
    return FineTuneResult(delta, U, V, float(loss), history, method, adapter, n)
