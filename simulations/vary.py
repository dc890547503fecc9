"""The paper's linear "vary" experiment, run as the authors' script runs it.

Per configuration and seed: ``N`` samples of each of ``T`` retraining tasks; LoRA-ML retrained
by the paper's block-coordinate descent, SR by pooled least squares on the same samples; then
gradient descent on an asymmetric adapter of rank ``config.ft_rank`` with ``n`` samples of an
unseen task, from a start shared by all bases. Everything follows the authors' script
(``linear/run.py`` of github.com/jacob-block/peft-ml): its steps (``convention="paper"``,
docs/theory.md, section 3.3), its rounds, its fine-tuning step counts per sweep, and, with
``family="per-run"``, its ground truth: one draw per script run whose slices serve every value
of the swept parameter, with only the samples and the retraining start varying across runs.

The table has one row per (seed, method, recorded fine-tuning iteration) with two measures of
the adapted model ``W = A + U V^T`` on the new task ``W*``:

- ``test_loss``, the population excess loss ``||W - W*||_F^2`` (identity input covariance);
- ``insample_error``, the quantity the authors plot: the noise-free error summed over the
  ``n`` fine-tuning inputs, ``sum_i ||(W - W*) x_i||^2 = n tr((W - W*) Sxx (W - W*)^T)``,
  about ``n`` times the first.

The curve is recorded at :func:`record_iterations` (a few hundred iterations, log- and
evenly-spaced, plus the last), not at every one of up to 10,000 steps.

``authors_quirks=True`` reproduces two measured departures of the authors' script from the
model it states, so that the setting of their figures can be run: the noise has standard
deviation ``sigma^2`` instead of ``sigma``, and their SR baseline (method ``"SR (authors)"``,
:func:`authors_sr_baseline`) is gradient descent on ``A`` with each task's random, never
updated ``U0_t U0_t^T`` left inside the model, whose limit is pooled least squares minus the
mean of the ``U0_t U0_t^T`` (:func:`authors_sr_limit`). The pooled least-squares SR is
reported beside it on the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lowrank_theory.simulations.configs import VARY_FT_STEPS, VARY_VALUES, VaryConfig
from lowrank_theory.simulations.streams import stream_seeds
from numpy.typing import NDArray

import lowrank_theory as lt
from lowrank_theory.adaptation import PAPER_FT_INIT_SCALE, adapter_gradient_descent
from lowrank_theory.adapters import AsymmetricAdapter, Factors, SymmetricAdapter
from lowrank_theory.losses import Statistics, excess_losses, loss_gradient, statistics
from lowrank_theory.paper_protocol import (
    PAPER_INIT_SCALE,
    PAPER_LR_A,
    PAPER_ROUNDS,
    run_paper_protocol,
)

__all__ = [
    "AUTHORS_SR",
    "RECORD_LINEAR_POINTS",
    "RECORD_LOG_POINTS",
    "VaryDraw",
    "authors_sr_baseline",
    "authors_sr_limit",
    "draw_vary",
    "fine_tune_batch",
    "insample_error",
    "paper_protocol_batch",
    "per_run_ground_truth",
    "record_iterations",
    "run_vary",
]

#: Method name of the authors' SR baseline (``authors_quirks=True``).
AUTHORS_SR = "SR (authors)"
#: The fine-tuning curve is recorded at this many log-spaced iterations (good on a log axis) ...
RECORD_LOG_POINTS = 200
#: ... and at this many evenly spaced ones (good on the linear axis of the paper's figures).
RECORD_LINEAR_POINTS = 100


def record_iterations(steps: int, extra: Sequence[int] = ()) -> NDArray[np.int64]:
    """The fine-tuning iterations a vary run records: 0, the last, and a few hundred between.

    Parameters
    ----------
    steps : int
        Fine-tuning steps.
    extra : sequence of int
        Further iterations to include (those above ``steps`` are dropped).

    Returns
    -------
    ndarray of int
        Sorted, distinct: ``RECORD_LOG_POINTS`` log-spaced and ``RECORD_LINEAR_POINTS + 1``
        evenly spaced iterations in ``[0, steps]`` (rounded), 0, ``steps`` and ``extra``.

    Examples
    --------
    >>> record_iterations(3).tolist()
    [0, 1, 2, 3]
    >>> it = record_iterations(10_000, extra=(1400,))
    >>> int(it[-1]), 1400 in it, len(it) < 300
    (10000, True, True)
    """
    grid = np.concatenate([
        np.geomspace(1, max(steps, 1), RECORD_LOG_POINTS),
        np.linspace(0, steps, RECORD_LINEAR_POINTS + 1),
        [0, steps], [e for e in extra if e <= steps],
    ])
    return np.unique(np.rint(grid).astype(np.int64))


# --------------------------------------------------------------------------- ground truth
def per_run_ground_truth(config: VaryConfig) -> dict[str, NDArray[np.float64]]:
    """The authors' ground truth: one draw at the largest shape of the vary set, to be sliced.

    The authors draw ``A*`` (symmetrised Gaussian), the offset factors ``U*``, the new task's
    factor and the fine-tuning start once per script run, at the largest ``d``, ``T`` and
    ``k`` of the sweep, and slice them for every value. Here the largest shape is that of the
    whole vary set (``VARY_VALUES``, or the config's own value where larger): a slice of a
    Gaussian draw has the distribution of a fresh smaller draw, so every sweep gets the
    authors' scheme, and the configs of the set share one ground truth.

    Parameters
    ----------
    config : VaryConfig
        Only ``family_seed``, ``d``, ``T`` and ``k`` are read.

    Returns
    -------
    dict
        ``"A_star"`` (D, D), ``"U_star"`` (T_max, D, K), ``"U_new"`` (D, K), ``"ft_U"`` and
        ``"ft_V"`` (D, 3K) with entries ``N(0, PAPER_FT_INIT_SCALE^2)``.
    """
    D = max(*VARY_VALUES["d"], config.d)
    T = max(*VARY_VALUES["T"], config.T)
    K = max(*VARY_VALUES["k"], config.k)
    rng = np.random.default_rng(stream_seeds(config.family_seed, ("per-run family",))
                                ["per-run family"])
    G = rng.standard_normal((D, D))
    return {
        "A_star": (G + G.T) / 2.0,
        "U_star": rng.standard_normal((T, D, K)),
        "U_new": rng.standard_normal((D, K)),
        "ft_U": PAPER_FT_INIT_SCALE * rng.standard_normal((D, 3 * K)),
        "ft_V": PAPER_FT_INIT_SCALE * rng.standard_normal((D, 3 * K)),
    }


@dataclass(frozen=True, eq=False)
class VaryDraw:
    """Everything random that one seed of a vary configuration uses.

    Attributes
    ----------
    family : TaskFamily
        The retraining tasks; its ``sigma`` is the noise standard deviation sampled
        (``config.noise_std``).
    new_task : TaskFamily
        The unseen task (``T = 1``).
    data : TaskData
        ``N`` samples of every retraining task.
    ft_data : TaskData
        ``n`` samples of the new task, shared by every base.
    ft_start : tuple of ndarray of shape (d, ft_rank)
        ``(U0, V0)`` of the fine-tuning adapter, shared by every base.
    init_seed : int
        Seed of LoRA-ML's random start (``fit_lora_ml(method="paper", seed=init_seed)``).
    sr_start : ndarray of shape (T, d, k)
        The ``U0_t`` frozen inside the authors' SR baseline.
    """

    family: lt.TaskFamily
    new_task: lt.TaskFamily
    data: lt.TaskData
    ft_data: lt.TaskData
    ft_start: Factors
    init_seed: int
    sr_start: NDArray[np.float64]


def draw_vary(config: VaryConfig, seed: int) -> VaryDraw:
    """Draw the ground truth, samples and starts of one seed of ``config``.

    ``family="per-seed"`` draws a fresh family (``TaskFamily.random``), new task and
    fine-tuning start for every seed (the start as ``lt.fine_tune(..., seed=s)`` draws it,
    after the sample from the same generator); ``family="per-run"`` slices
    :func:`per_run_ground_truth`, the same for every seed. The samples, LoRA-ML's start and
    the authors' SR start come from the seed's own streams (:func:`stream_seeds`) in both.
    """
    d, k, T, r = config.d, config.k, config.T, config.ft_rank
    st = stream_seeds(seed, ("family", "sample", "new_task", "init", "fine_tune", "sr_init"))
    ft_rng = np.random.default_rng(st["fine_tune"])
    if config.family == "per-seed":
        family = lt.TaskFamily.random(d, k, T, config.noise_std, seed=st["family"])
        new_task = family.new_task(seed=st["new_task"])
        ft_data = new_task.sample(config.n, seed=ft_rng)
        ft_start = tuple(f[0] for f in AsymmetricAdapter(r).init_factors(
            1, d, ft_rng, PAPER_FT_INIT_SCALE))
    else:
        truth = per_run_ground_truth(config)
        family = lt.TaskFamily(truth["A_star"][:d, :d], truth["U_star"][:T, :d, :k],
                               config.noise_std)
        new_task = family.new_task(U=truth["U_new"][:d, :k])
        ft_data = new_task.sample(config.n, seed=ft_rng)
        ft_start = (truth["ft_U"][:d, :r], truth["ft_V"][:d, :r])
    sr_start = PAPER_INIT_SCALE * np.random.default_rng(st["sr_init"]).standard_normal((T, d, k))
    return VaryDraw(family, new_task, family.sample(config.N, seed=st["sample"]), ft_data,
                    ft_start, st["init"], sr_start)


# --------------------------------------------------------------------------- retraining
def _stack(per_run: Sequence[Statistics]) -> Statistics:
    """One batch of statistics from runs of equal shape (runs on a new leading axis)."""
    first = per_run[0]
    return Statistics(
        *(np.stack([getattr(s, f) for s in per_run]) for f in ("Sxx", "Sxy", "syy")),
        offset=first.offset, population=first.population,
        W_star=None if first.W_star is None else np.stack([s.W_star for s in per_run]),
        identity_inputs=first.identity_inputs,
    )


def paper_protocol_batch(datas: Sequence[lt.TaskData], k: int, seeds: Sequence[int],
                         rounds: int, convention: str = "paper") -> NDArray[np.float64]:
    """The paper's LoRA-ML retraining for several samples at once (runs as a batch axis).

    Equivalent to ``fit_lora_ml(data, k, method="paper", seed=s, max_iter=rounds,
    convention=convention).A`` for each pair, but every step advances all runs with one call
    of the core's broadcasting :func:`lowrank_theory.paper_protocol.run_paper_protocol`, which
    amortises numpy's per-call overhead.

    Parameters
    ----------
    datas : sequence of TaskData
        Samples of equal shape (T, N, d).
    k : int
        Symmetric adapter rank.
    seeds : sequence of int
        Seed of each run's random start (as ``fit_lora_ml``'s ``seed``).
    rounds : int
        Block-coordinate rounds.
    convention : {"paper", "sum"}, default="paper"
        Loss convention of the steps (:mod:`lowrank_theory.paper_protocol`).

    Returns
    -------
    ndarray of shape (len(datas), d, d)
        The retrained bases.

    Raises
    ------
    RuntimeError
        If a run diverges.
    """
    adapter = SymmetricAdapter(k)
    stats = _stack([statistics(data) for data in datas])
    T, d = stats.T, stats.d
    # The same start as fit_lora_ml(method="paper", seed=s): A0 = 0, U0 from the seed's generator.
    factors = tuple(
        np.stack(parts)
        for parts in zip(*(adapter.init_factors(T, d, np.random.default_rng(s), PAPER_INIT_SCALE)
                           for s in seeds))
    )
    run = run_paper_protocol(stats, adapter, np.zeros((len(datas), d, d)), factors, rounds,
                             convention=convention)
    if run.diverged:
        raise RuntimeError(f"the paper protocol diverged in round {run.rounds_done}.")
    return run.A


def _mean_offset(start: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(1/T) sum_t U0_t U0_t^T`` of factors of shape (..., T, d, k)."""
    return SymmetricAdapter(start.shape[-1]).delta((start,)).mean(axis=-3)


def authors_sr_baseline(datas: Sequence[lt.TaskData], starts: Sequence[NDArray[np.float64]],
                        rounds: int = PAPER_ROUNDS, lr: float = PAPER_LR_A) -> NDArray[np.float64]:
    """The authors' SR baseline: gradient descent on ``A`` with random ``U0_t U0_t^T`` inside.

    Their script builds SR as the LoRA-ML learner on the pooled samples and takes only its
    base steps: the model of every task stays ``A + U0_t U0_t^T`` with the random start
    ``U0_t`` (never updated), and ``A`` steps on the task average of the half mean squared
    errors, ``rounds`` steps of size ``lr`` from ``A = 0``.

    Parameters
    ----------
    datas : sequence of TaskData
        Samples of equal shape (T, N, d), one per run.
    starts : sequence of ndarray of shape (T, d, k)
        Each run's ``U0``.
    rounds, lr : int, float
        The authors' 3000 steps of size 0.03.

    Returns
    -------
    ndarray of shape (len(datas), d, d)

    Notes
    -----
    With ``S = sum_t Sxx_t``, ``B = sum_t Syx_t`` (the pooled second moments, summed over
    tasks as the script's pooled sample sums them) and ``M = (1/T) sum_t U0_t U0_t^T``, a step
    is ``A <- A - lr ((A + M) S - B)``; its fixed point is ``A = B S^{-1} - M``, pooled least
    squares minus ``M`` (:func:`authors_sr_limit`).
    """
    stats = _stack([statistics(data) for data in datas])
    M = _mean_offset(np.stack(starts))
    A = np.zeros_like(M)
    for _ in range(rounds):
        # sum_t G_t(A + M) / 2 = (A + M) S - B.
        A = A - (lr / 2.0) * loss_gradient(stats, (A + M)[..., None, :, :]).sum(axis=-3)
    return A


def authors_sr_limit(data: lt.TaskData, start: NDArray[np.float64]) -> NDArray[np.float64]:
    """The limit of :func:`authors_sr_baseline`: pooled least squares minus the mean ``U0 U0^T``.

    Parameters
    ----------
    data : TaskData
    start : ndarray of shape (T, d, k)

    Returns
    -------
    ndarray of shape (d, d)
        ``lt.standard_retraining(data) - (1/T) sum_t U0_t U0_t^T``.
    """
    return lt.standard_retraining(data) - _mean_offset(start)


# --------------------------------------------------------------------------- fine-tuning
def fine_tune_batch(A: NDArray[np.float64], stats: Statistics, start: Factors, steps: int,
                    lr: float, record: Sequence[int]) -> NDArray[np.float64]:
    """The paper's fine-tuning, gradient descent on ``U V^T`` over a frozen base, for a batch.

    Equivalent to ``lt.fine_tune(A_b, ..., adapter="asymmetric", method="gd", steps=steps,
    lr=lr, convention="paper")`` for each run ``b``: both run the core's one loop,
    :func:`lowrank_theory.adaptation.adapter_gradient_descent`, here with every step advancing
    all runs (and with its divergence guard: overflowing factors raise ``ValueError``).

    Parameters
    ----------
    A : ndarray of shape (B, d, d)
        Frozen bases.
    stats : Statistics
        Statistics of the fine-tuning samples, shape (B, 1, d, d).
    start : tuple of ndarray of shape (B, d, r)
        ``(U0, V0)``.
    steps : int
    lr : float
    record : sequence of int
        Increasing iterations in ``[0, steps]`` at which to record the update.

    Returns
    -------
    ndarray of shape (len(record), B, d, d)
        The update ``U V^T`` at each recorded iteration.
    """
    adapter = AsymmetricAdapter(start[0].shape[-1])
    return adapter_gradient_descent(A, stats, adapter, start, steps, lr, "paper", record)[1]


def insample_error(R: NDArray[np.float64], Sxx: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """The authors' plotted quantity: ``sum_i ||R x_i||^2 = n tr(R Sxx R^T)``, ``R = W - W*``.

    Parameters
    ----------
    R : ndarray of shape (..., d, d)
        Model error on the new task.
    Sxx : ndarray of shape (..., d, d)
        ``X^T X / n`` of the fine-tuning inputs.
    n : int
        Number of fine-tuning inputs.

    Returns
    -------
    ndarray of shape (...)
    """
    return n * np.sum((R @ Sxx) * R, axis=(-1, -2))


def run_vary(config: VaryConfig, seeds: tuple[int, ...]) -> pd.DataFrame:
    """Fine-tuning curves on an unseen task after LoRA-ML and SR retraining (module notes).

    Returns
    -------
    DataFrame
        One row per (seed, method, recorded iteration): ``test_loss``, ``insample_error``
        and the relative ``base_error`` ``||A - A*||_F / ||A*||_F`` of the retrained base.
        Methods: ``"LoRA-ML"``, ``"SR"`` (pooled least squares) and, with
        ``authors_quirks``, ``"SR (authors)"``.
    """
    draws = [draw_vary(config, s) for s in seeds]
    datas = [dr.data for dr in draws]
    bases = {"LoRA-ML": paper_protocol_batch(datas, config.k, [dr.init_seed for dr in draws],
                                             config.rounds),
             "SR": np.stack([lt.standard_retraining(data) for data in datas])}
    if config.authors_quirks:
        bases[AUTHORS_SR] = authors_sr_baseline(datas, [dr.sr_start for dr in draws],
                                                config.rounds)
    methods = list(bases)
    # Runs in (seed, method) order on one batch axis; every method of a seed shares its
    # fine-tuning sample and start.
    A = np.stack([bases[m][i] for i in range(len(seeds)) for m in methods])
    ft_stats = [statistics(dr.ft_data) for dr in draws]
    stats = _stack([ft_stats[i] for i in range(len(seeds)) for _ in methods])
    start = tuple(np.stack([dr.ft_start[f] for dr in draws for _ in methods]) for f in (0, 1))
    record = record_iterations(config.ft_steps, extra=tuple(VARY_FT_STEPS.values()))
    deltas = fine_tune_batch(A, stats, start, config.ft_steps, config.ft_lr, record)
    truth = _stack([statistics(dr.new_task) for dr in draws for _ in methods])
    W = A + deltas  # (recorded, run, d, d)
    test = excess_losses(truth, W[..., None, :, :])[..., 0]
    sample = insample_error(W - truth.W_star[:, 0], stats.Sxx[:, 0], config.n)
    frames = []
    for b, (seed, method) in enumerate((s, m) for s in seeds for m in methods):
        A_star = draws[b // len(methods)].family.A_star
        frames.append(pd.DataFrame({
            "seed": seed, "method": method, "iteration": record, "test_loss": test[:, b],
            "insample_error": sample[:, b],
            "base_error": lt.metrics.base_error(A[b], A_star, relative=True),
        }))
    return pd.concat(frames, ignore_index=True)
