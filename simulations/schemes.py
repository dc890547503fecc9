"""The ``schemes`` experiment: adaptation schemes from the SR and LoRA-ML bases, at equal budget.

Per seed: a random family (``d, k, T, sigma``), ``N`` samples per retraining task, the SR base
and the LoRA-ML base with its per-task adapters (exact solver), a fresh task and a "harmful"
task from the same family. Every scheme of :mod:`lowrank_theory.schemes` then adapts both bases
to the fresh task at every budget ``scheme.rank_budget(r, d)`` (``2 d r`` for LoRA; ``T + 2 d r`` for the mixture of LoRA-ML's
``T`` adapters; ``d^2`` for the dense interpolation), ``r = 1 .. max_rank``, from ``n`` samples for each
``n`` in ``n_grid`` and from the population (``n = inf``). All schemes and both bases share the
sample of a given ``n``.

Table (one row per seed, n, base, scheme, budget): ``excess_loss`` on the new task,
``preserve_loss`` / ``forgetting`` (the retraining tasks' mean excess loss at the adapted
weights, and its increase over the base's), ``params`` and ``update_rank`` of the update,
scheme-specific columns (``rank``, ``alpha``, ``beta``, ``harmful_gain``, ``task_loss_lost``),
``target_loss`` (LoRA-ML base, exact rank-k LoRA, same seed and n) and, on SR rows,
``crossing_budget``: the smallest budget at which the scheme from SR goes below the target
(NaN if none in the grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from lowrank_theory.simulations.configs import ExperimentConfig, Sweep
from lowrank_theory.simulations.fields import param
from lowrank_theory.simulations.runner import Experiment
from lowrank_theory.simulations.streams import stream_seeds

import lowrank_theory as lt
from lowrank_theory._validation import check_int_tuple
from lowrank_theory.adaptation import PAPER_FT_LR
from lowrank_theory.schemes import (
    AdaptationScheme,
    AdaptiveRankLoRA,
    FixedRankLoRA,
    FullFineTune,
    MixtureOfAdapters,
    PostPerturbation,
    SubspaceInit,
    WeightInterpolation,
    crossing_budget,
    lora_params,
)

__all__ = ["SchemesConfig", "run_schemes", "schemes_for", "EXPERIMENT", "COLUMNS", "BETAS"]

#: Projection strengths of the subspace-constrained initialisation.
BETAS: tuple[float, ...] = (0.0, 0.5, 1.0)
#: Columns of the table, in order (the runner adds the key and config columns in front).
COLUMNS: tuple[str, ...] = (
    "seed", "n", "base", "scheme", "budget", "rank_equivalent", "params", "update_rank",
    "excess_loss", "preserve_loss", "forgetting", "target_loss", "crossing_budget", "rank",
    "alpha", "beta", "steps", "harmful_gain", "task_loss_lost",
)
#: Scheme-specific numbers copied from ``SchemeResult.info`` into columns.
INFO_COLUMNS: tuple[str, ...] = ("rank", "alpha", "beta", "steps", "harmful_gain",
                                  "task_loss_lost")
#: Fine-tuning sample sizes of the full sweep (the quick one uses the config's default).
FULL_N_GRID: tuple[int, ...] = (12, 20, 50, 100, 200, 500, 1000, 5000)
#: The target: exact rank-k LoRA from the LoRA-ML base.
TARGET_SCHEME = "lora-exact"


@dataclass(frozen=True)
class SchemesConfig(ExperimentConfig):
    """One configuration of the ``schemes`` experiment.

    Parameters
    ----------
    d, T, k, N : int
        Dimension, retraining tasks, offset rank, samples per retraining task.
    sigma : float
        Noise standard deviation.
    n_grid : tuple of int
        Fine-tuning sample sizes, increasing, each above ``d`` (the adaptive-rank scheme
        estimates the noise from the least-squares residual).
    population : bool
        Also adapt on the population (rows with ``n = inf``).
    max_rank : int
        Each scheme runs at its cost of each rank ``r = 1 .. max_rank`` (``2 d r`` for LoRA).
    ft_steps, ft_lr : int, float
        Gradient steps of ``lora-gd`` (the paper's 1000) and the step size of every
        gradient-descent scheme.
    subspace_steps : tuple of int
        Gradient steps after the subspace-constrained initialisation, one scheme each: the
        trade-off between fit and forgetting shows before gradient descent leaves the
        initial subspace.
    rho : float
        Norm of the post-fine-tuning perturbations; their new-task budget is ``rho^2``, the
        expected cost of a random perturbation of that norm on a perfect fit.
    """

    d: int = param(10, "input and output dimension", minimum=1)
    T: int = param(3, "number of retraining tasks", minimum=1)
    k: int = param(1, "rank of the true offsets", minimum=1, note="<= d")
    N: int = param(1000, "samples per retraining task", minimum=1)
    sigma: float = param(0.1, "noise standard deviation", minimum=0, exclusive=True)
    n_grid: tuple[int, ...] = param((12, 20, 50, 200, 1000), "fine-tuning sample sizes",
                                    minimum=1, increasing=True, note="each > d")
    population: bool = param(True, "also adapt on the population (rows with n = inf)")
    max_rank: int = param(5, "each scheme runs at its cost of ranks 1 .. max_rank", minimum=1,
                          note="<= d")
    ft_steps: int = param(1000, "gradient steps of lora-gd", minimum=0)
    ft_lr: float = param(PAPER_FT_LR, "step size of every gradient-descent scheme", minimum=0,
                         exclusive=True)
    subspace_steps: tuple[int, ...] = param((0, 30, 100), "gradient steps after the "
                                            "subspace-constrained start, one scheme each",
                                            minimum=0, increasing=True)
    rho: float = param(1.0, "norm of the post-fine-tuning perturbations", minimum=0,
                       exclusive=True)

    def _validate(self) -> None:
        # The least-squares schemes need more samples than dimensions.
        check_int_tuple(self.n_grid, "n_grid", minimum=self.d + 1)
        if self.k > self.d or self.max_rank > self.d:
            raise ValueError(f"k and max_rank must be <= d; got k={self.k}, "
                             f"max_rank={self.max_rank}, d={self.d}")

    def columns(self) -> dict[str, Any]:
        """Scalar fields plus ``kT1 = k (T + 1)``, SR's rank threshold."""
        return {**super().columns(), "kT1": self.k * (self.T + 1)}


def schemes_for(config: SchemesConfig, adapters: np.ndarray | None,
                harmful: lt.TaskFamily) -> tuple[AdaptationScheme, ...]:
    """The schemes run from one base (``adapters``: its per-task updates, None for SR).

    The subspace to preserve has the retraining offsets' dimension ``kT``.
    """
    return (
        FixedRankLoRA("exact"),
        FixedRankLoRA("gd", steps=config.ft_steps, lr=config.ft_lr),
        AdaptiveRankLoRA(),
        MixtureOfAdapters(adapters),
        *(SubspaceInit(beta=b, steps=s, lr=config.ft_lr, preserve_rank=config.k * config.T)
          for s in config.subspace_steps for b in BETAS),
        FullFineTune(),
        WeightInterpolation("full"),
        WeightInterpolation("lora"),
        *(PostPerturbation(FixedRankLoRA("exact"), harmful, config.rho, kind,
                           epsilon=config.rho**2) for kind in ("optimised", "random")),
    )


def _budgets_of(scheme: AdaptationScheme, config: SchemesConfig) -> list[int]:
    """The scheme's cost of each rank ``1 .. max_rank`` (its own parameter count per rank)."""
    ranks = range(1, config.max_rank + 1)
    if isinstance(scheme, PostPerturbation):
        # Post-processing of one fine-tune: after rank k and after rank k (T + 1) only.
        ranks = [r for r in ranks if r in (config.k, config.k * (config.T + 1))]
    return sorted({scheme.rank_budget(r, config.d) for r in ranks})


def _crossings(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``target_loss`` and, on SR rows, ``crossing_budget`` (rows of one seed)."""
    target = rows[(rows["base"] == "LoRA-ML") & (rows["scheme"] == TARGET_SCHEME)
                  & (rows["rank_equivalent"] == rows["k"])].set_index("n")["excess_loss"]
    rows["target_loss"] = rows["n"].map(target)
    rows["crossing_budget"] = math.nan
    for _, group in rows[rows["base"] == "SR"].groupby(["n", "scheme"], sort=False):
        cross = crossing_budget(group["budget"], group["excess_loss"],
                                group["target_loss"].iloc[0])
        rows.loc[group.index, "crossing_budget"] = math.nan if cross is None else cross
    return rows


def _run_seed(config: SchemesConfig, seed: int, streams: dict[str, int]) -> pd.DataFrame:
    fam = lt.TaskFamily.random(config.d, config.k, config.T, config.sigma, seed=streams["family"])
    data = fam.sample(config.N, seed=streams["sample"])
    new = fam.new_task(seed=streams["new_task"])
    harmful = fam.new_task(seed=streams["harmful"])
    fit = lt.fit_lora_ml(data, config.k, seed=streams["init"])
    bases = {"SR": (lt.standard_retraining(data), None), "LoRA-ML": (fit.A, fit.deltas)}
    ns: list[int | None] = [*config.n_grid, *([None] if config.population else [])]
    ft_seeds = stream_seeds(streams["fine_tune"], [str(n) for n in ns])
    rows = []
    for n in ns:
        for base, (A, adapters) in bases.items():
            for scheme in schemes_for(config, adapters, harmful):
                for budget in _budgets_of(scheme, config):
                    res = scheme.adapt(A, new, budget, n=n, seed=ft_seeds[str(n)], preserve=fam)
                    rows.append({
                        "seed": seed, "n": math.inf if n is None else n, "base": base,
                        "scheme": res.scheme, "budget": budget,
                        "rank_equivalent": budget / lora_params(config.d, 1),
                        "params": res.params, "update_rank": res.update_rank,
                        "excess_loss": res.loss,
                        "preserve_loss": float(np.mean(res.preserve_loss)),
                        "forgetting": res.forgetting,
                        **{c: res.info.get(c, math.nan) for c in INFO_COLUMNS},
                    })
    table = pd.DataFrame(rows)
    table["k"] = config.k
    table = _crossings(table)
    return table.reindex(columns=list(COLUMNS))


def run_schemes(config: SchemesConfig, seeds: tuple[int, ...]) -> pd.DataFrame:
    """Every scheme x {SR, LoRA-ML} base x budget x n, for each seed (see the module notes)."""
    names = ("family", "sample", "new_task", "harmful", "init", "fine_tune")
    return pd.concat([_run_seed(config, s, stream_seeds(s, names)) for s in seeds],
                     ignore_index=True)


EXPERIMENT = Experiment(
    name="schemes",
    title="Adaptation schemes from the SR and LoRA-ML bases at equal parameter budget",
    claim="From A_SR no scheme with fewer than k(T+1) rank-equivalent parameters reaches the "
          "new task (Theorem 1's floor); from the LoRA-ML base rank k suffices for every scheme.",
    run=run_schemes,
    config_type=SchemesConfig,
    # Quick differs from full in N, the n grid and the number of seeds.
    quick=Sweep((SchemesConfig(), SchemesConfig(sigma=1.0)), seeds=(0, 1, 2)),
    full=Sweep(tuple(SchemesConfig(N=5000, sigma=sigma, n_grid=FULL_N_GRID)
                     for sigma in (0.1, 1.0)), seeds=tuple(range(10))),
)
