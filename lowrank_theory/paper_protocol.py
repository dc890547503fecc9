"""The paper's linear LoRA-ML protocol: block-coordinate gradient descent on the statistics.

Each round takes ``inner_steps`` gradient steps on every task's adapter factors, then one
gradient step on the shared base ``A``, from ``A_0 = 0`` and factors with i.i.d.
``N(0, init_scale^2)`` entries. :func:`~lowrank_theory.lora_ml.fit_lora_ml` with
``method="paper"`` is the front door; this module holds the schedule, the two loss conventions
and a fused update for symmetric adapters.

Conventions
-----------
With ``L_t(W) = (1/N) sum_i ||y_ti - W x_ti||^2`` (the per-task mean squared error, summed over
the ``d`` outputs), ``W_t = A + Delta_t`` and ``G_t = dL_t/dW_t = 2 (W_t Sxx_t - Syx_t)``:

``"sum"``
    Gradient steps on ``F(A, U) = sum_t L_t(W_t)``:
    ``U_t <- U_t - lr_U (G_t + G_t^T) U_t`` and ``A <- A - lr_A sum_t G_t``.
``"paper"``
    The authors' script (``linear/learners.py`` of github.com/jacob-block/peft-ml): each
    adapter steps on its task's half mean squared error and the base on the task average,
    ``U_t <- U_t - lr_U d(L_t / 2)/dU_t = U_t - (lr_U / 2) (G_t + G_t^T) U_t`` and
    ``A <- A - lr_A d/dA (1/T) sum_t L_t / 2 = A - lr_A / (2T) sum_t G_t``.
    Its U-step is half, and its A-step ``1 / (2T)`` times, the ``"sum"`` step of the same size.

For an asymmetric adapter ``Delta_t = U_t V_t^T`` the factor gradients are ``G_t V_t`` and
``G_t^T U_t`` (both factors step together), with the same convention factors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lowrank_theory._validation import check_choice
from lowrank_theory.adapters import Adapter, Factors, SymmetricAdapter
from lowrank_theory.losses import Statistics, loss_gradient, summed_excess_loss

__all__ = [
    "CONVENTIONS",
    "PAPER_ROUNDS",
    "PAPER_INNER_STEPS",
    "PAPER_LR_U",
    "PAPER_LR_A",
    "PAPER_INIT_SCALE",
    "DIVERGENCE_FACTOR",
    "PaperRun",
    "step_scales",
    "paper_round",
    "run_paper_protocol",
]

#: Loss conventions of the protocol (see the module docstring).
CONVENTIONS = ("paper", "sum")
#: The authors' linear schedule: 3000 rounds of 10 factor steps (size 0.003) and one base step
#: (size 0.03), from factors with i.i.d. N(0, 0.1^2) entries.
PAPER_ROUNDS = 3000
PAPER_INNER_STEPS = 10
PAPER_LR_U = 0.003
PAPER_LR_A = 0.03
PAPER_INIT_SCALE = 0.1
#: The run stops as diverged once the objective exceeds this multiple of its scale (starting
#: objective plus ``sum_t E||y_t||^2``, the objective of the zero model): a stable gradient
#: descent never gets there, and stopping early keeps the iterates finite.
DIVERGENCE_FACTOR = 1e10


@dataclass(frozen=True, eq=False)
class PaperRun:
    """Outcome of :func:`run_paper_protocol`.

    Attributes
    ----------
    A : ndarray of shape (..., d, d)
    factors : tuple of ndarray of shape (..., T, d, r)
    history : ndarray of shape (rounds_done + 1, ...)
        Objective (:func:`~lowrank_theory.losses.summed_excess_loss`, in the ``"sum"``
        scaling whatever the convention) at the start and after each round.
    rounds_done : int
    diverged : bool
        Whether the run stopped early because the objective became non-finite or exceeded
        ``DIVERGENCE_FACTOR`` times its scale.
    """

    A: NDArray[np.float64]
    factors: Factors
    history: NDArray[np.float64]
    rounds_done: int
    diverged: bool


def step_scales(convention: str, T: int) -> tuple[float, float]:
    """Factors ``(c_U, c_A)`` by which a convention scales the ``"sum"`` gradient steps.

    Parameters
    ----------
    convention : {"paper", "sum"}
    T : int
        Number of tasks.

    Returns
    -------
    (float, float)
        ``(1/2, 1/(2T))`` for ``"paper"``, ``(1, 1)`` for ``"sum"``.

    Examples
    --------
    >>> step_scales("paper", 3)
    (0.5, 0.16666666666666666)
    """
    check_choice(convention, "convention", CONVENTIONS)
    return (0.5, 0.5 / T) if convention == "paper" else (1.0, 1.0)


def paper_round(
    stats: Statistics,
    adapter: Adapter,
    A: NDArray[np.float64],
    factors: Factors,
    inner_steps: int = PAPER_INNER_STEPS,
    lr_U: float = PAPER_LR_U,
    lr_A: float = PAPER_LR_A,
    *,
    convention: str,
) -> tuple[NDArray[np.float64], Factors]:
    """One round of the paper protocol: ``inner_steps`` factor steps, then one base step.

    Broadcasts over leading batch axes of ``stats``, ``A`` (..., d, d) and the factors
    (..., T, d, r), so independent runs (seeds, configurations) can advance together. This is
    the plain form for any adapter; :func:`run_paper_protocol` uses a fused form for
    symmetric adapters. ``convention`` (``"paper"`` or ``"sum"``, module docstring) has no
    default: the meaning of ``lr_U`` and ``lr_A`` depends on it, so every caller states it.

    Returns
    -------
    A, factors
        The updated base and factors (new arrays).
    """
    c_U, c_A = step_scales(convention, stats.T)
    A_b = A[..., None, :, :]
    for _ in range(inner_steps):
        G = loss_gradient(stats, A_b + adapter.delta(factors))
        grads = adapter.factor_gradients(factors, G)
        factors = tuple(f - (c_U * lr_U) * g for f, g in zip(factors, grads))
    G = loss_gradient(stats, A_b + adapter.delta(factors))
    return A - (c_A * lr_A) * G.sum(axis=-3), factors


def run_paper_protocol(
    stats: Statistics,
    adapter: Adapter,
    A: NDArray[np.float64],
    factors: Factors,
    rounds: int = PAPER_ROUNDS,
    inner_steps: int = PAPER_INNER_STEPS,
    lr_U: float = PAPER_LR_U,
    lr_A: float = PAPER_LR_A,
    convention: str = "paper",
) -> PaperRun:
    """Run the protocol for ``rounds`` rounds, stopping early if it diverges.

    Parameters
    ----------
    stats : Statistics
        Statistics of shape (..., T, d, d); leading axes are independent runs.
    adapter : Adapter
    A : ndarray of shape (..., d, d)
        Starting base.
    factors : tuple of ndarray of shape (..., T, d, r)
        Starting factors.
    rounds, inner_steps, lr_U, lr_A : schedule
    convention : {"paper", "sum"}, default="paper"
        Loss convention of the steps (module docstring).

    Returns
    -------
    PaperRun

    Notes
    -----
    Symmetric adapters take a fused step. With ``S_t = Sxx_t``, ``B_t = Syx_t`` and
    ``s = -2 c_U lr_U``, the ``"sum"``-form step ``U <- U - c_U lr_U (G + G^T) U`` is

        U <- (I + s C_t) U + U (U^T (s S_t) U) + (s S_t) U (U^T U),
        C_t = A S_t + S_t A^T - B_t - B_t^T,

    where ``C_t`` is fixed during a round. In rows, ``R1 = U^T (I + s C_t)``,
    ``R0 = U^T (s S_t)`` and ``R2 = U^T``; one product of ``U^T`` with the stacked blocks
    ``[I + s C_t, s S_t, I, s S_t]`` gives ``[R1; R0; R2; R0]``, a second gives the k x k
    blocks ``[R2; R0] U = [U^T U; U^T s S_t U]``, and a third
    ``[I, U^T U, U^T s S_t U] [R1; R0; R2]`` is the new ``U^T``: three matrix products per
    step for all tasks and runs at once, into preallocated buffers. The A-step and the
    objective use the plain formulas once per round.
    """
    c_U, c_A = step_scales(convention, stats.T)
    start = summed_excess_loss(stats, A[..., None, :, :] + adapter.delta(factors))
    limit = DIVERGENCE_FACTOR * float(np.max(start + np.sum(stats.syy, axis=-1)))
    history = np.empty((rounds + 1, *np.shape(start)))
    history[0] = start
    with np.errstate(over="ignore", invalid="ignore"):
        if isinstance(adapter, SymmetricAdapter):
            A, factors, done, diverged = _symmetric_rounds(
                stats, A, factors[0], rounds, inner_steps, lr_U * c_U, lr_A * c_A, history, limit
            )
        else:
            A, factors, done, diverged = _plain_rounds(
                stats, adapter, A, factors, rounds, inner_steps, lr_U, lr_A, convention,
                history, limit,
            )
    return PaperRun(A, factors, history[: done + 1], done, diverged)


def _plain_rounds(
    stats, adapter, A, factors, rounds, inner_steps, lr_U, lr_A, convention, history, limit
):
    for r in range(rounds):
        A, factors = paper_round(
            stats, adapter, A, factors, inner_steps, lr_U, lr_A, convention=convention
        )
        obj = summed_excess_loss(stats, A[..., None, :, :] + adapter.delta(factors))
        history[r + 1] = obj
        if not np.max(obj) <= limit:  # also catches NaN
            return A, factors, r + 1, True
    return A, factors, rounds, False


def _symmetric_rounds(stats, A, U, rounds, inner_steps, step_U, step_A, history, limit):
    """The fused form of the rounds for ``Delta_t = U_t U_t^T`` (see run_paper_protocol)."""
    batch = A.shape[:-2]
    T, d, k = U.shape[-3:]
    shape = (*batch, T, d, d)
    S = np.broadcast_to(stats.Sxx, shape)
    B = np.broadcast_to(stats.Syx, shape)
    s = -2.0 * step_U
    A = np.array(A, dtype=np.float64)  # updated in place
    A_b = A[..., None, :, :]
    Ut = np.array(np.swapaxes(U, -1, -2), order="C")  # the state, rows U_t^T: (..., T, k, d)
    U_view = np.swapaxes(Ut, -1, -2)
    if k == 1:
        # Blocks side by side: one (1 x d) @ (d x 4d) product per task, whose (1 x 4d) output
        # is the (4 x d) stack of rows.
        M = np.empty((*batch, T, d, 4 * d))
        blocks = [M[..., i * d : (i + 1) * d] for i in range(4)]
        Y_out = np.empty((*batch, T, 1, 4 * d))
        Ut_in = Ut
    else:
        M = np.empty((*batch, T, 4, d, d))
        blocks = [M[..., i, :, :] for i in range(4)]
        Y_out = np.empty((*batch, T, 4, k, d))
        Ut_in = Ut[..., None, :, :]
    Y = Y_out.reshape(*batch, T, 4 * k, d)  # rows [R1; R0; R2; R0], a view
    Y_comb, Y_prod = Y[..., : 3 * k, :], Y[..., 2 * k :, :]
    np.multiply(S, s, out=blocks[1])
    blocks[2][...] = np.eye(d)
    blocks[3][...] = blocks[1]
    K0 = np.eye(d) - s * (B + np.swapaxes(B, -1, -2))  # I + s C_t without the A terms
    P = np.zeros((*batch, T, 3 * k, k))
    P[..., :k, :] = np.eye(k)
    P_out, P_T = P[..., k:, :], np.swapaxes(P, -1, -2)
    sAS, W, E = np.empty(shape), np.empty(shape), np.empty(shape)
    sAS_T = np.swapaxes(sAS, -1, -2)
    # The A-step's sum over tasks, scaled, as one product: (1 x T) @ (T x d^2).
    task_sum = np.full((1, T), 2.0 * step_A)
    E_rows = E.reshape(*batch, T, d * d)
    step = np.empty((*batch, 1, d * d))
    step_A_view = step.reshape(*batch, d, d)
    step_b = step.reshape(*batch, 1, d, d)
    # Objective at the end of a round: population <(W - W*) S, W - W*>, with W* S = B;
    # sample <W S - 2 B, W> + sum_t syy_t.
    population = stats.W_star is not None
    B_obj = B if population else 2.0 * B
    R = np.empty(shape) if population else W
    const = 0.0 if population else np.sum(stats.syy, axis=-1)
    if batch:
        def inner(X, Y):
            return np.einsum("...tij,...tij->...", X, Y)
    else:
        E_flat, R_flat = E.reshape(-1), R.reshape(-1)

        def inner(X, Y):
            return np.dot(E_flat, R_flat)
    matmul = np.matmul
    for r in range(rounds):
        matmul(A_b, blocks[1], out=sAS)
        np.add(sAS, sAS_T, out=blocks[0])
        blocks[0] += K0
        for _ in range(inner_steps):
            matmul(Ut_in, M, out=Y_out)
            matmul(Y_prod, U_view, out=P_out)
            matmul(P_T, Y_comb, out=Ut)
        # A-step: A <- A - step_A sum_t G_t with G_t / 2 = W_t S_t - B_t.
        matmul(U_view, Ut, out=W)
        W += A_b
        matmul(W, S, out=E)
        E -= B
        matmul(task_sum, E_rows, out=step)
        A -= step_A_view
        W -= step_b
        matmul(W, S, out=E)
        E -= B_obj
        if population:
            np.subtract(W, stats.W_star, out=R)
        obj = inner(E, R) + const
        history[r + 1] = obj
        if not (obj.max() if batch else obj) <= limit:  # also catches NaN
            return A, (np.ascontiguousarray(U_view),), r + 1, True
    return A, (np.ascontiguousarray(U_view),), rounds, False
