"""The synthetic experiments: functions from (config, seeds) to tidy rows, and their sweeps.

Every formula comes from :mod:`lowrank_theory`; this module only chooses what to run and how to
tabulate it. Randomness: each seed is split into named, independent streams
(:func:`stream_seeds`), so the ground truth of seed ``s`` is the same in every configuration
with the same shapes (paired comparisons across ``N`` or ``n``), and a run never depends on
which process ran it or what ran before.

Tables (one row per ...):

- ``vary`` (:mod:`lowrank_theory.simulations.vary`): (config, seed, method, recorded fine-tuning iteration):
  ``test_loss`` is the excess population loss on the unseen task, ``insample_error`` the
  authors' plotted quantity (the noise-free error summed over the fine-tuning inputs),
  ``base_error`` the relative ``||A - A*||_F`` of the retrained base.
- ``phase``: (config, seed): relative ``base_error`` of population LoRA-ML, its ``objective``,
  and the numerical rank of ``A^ - A*``.
- ``rate``: (config, seed, n, method): ``excess_loss`` after exact rank-k fine-tuning on ``n``
  samples, from the LoRA-ML, SR and oracle (``A*``) bases.
- ``landscape``: (config, seed, start): final excess ``objective`` and relative ``base_error``
  of one random start.
- ``atlas`` (:mod:`lowrank_theory.simulations.atlas`): (config, seed): one random family per
  seed, whether a certified spurious local minimum was found, and the rounds the paper
  protocol took to reach ``A*``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lowrank_theory.simulations.atlas import run_atlas
from lowrank_theory.simulations.configs import (
    RECOVERED,
    VARY_QUIRKS_PARAMS,
    AtlasConfig,
    LandscapeConfig,
    PhaseConfig,
    RateConfig,
    Sweep,
    VaryConfig,
    atlas_configs,
    phase_configs,
    vary_configs,
)
from lowrank_theory.simulations.runner import Experiment
from lowrank_theory.simulations.schemes import EXPERIMENT as SCHEMES
from lowrank_theory.simulations.streams import stream_seeds
from lowrank_theory.simulations.vary import paper_protocol_batch, run_vary

import lowrank_theory as lt

__all__ = [
    "EXPERIMENTS",
    "RANK_RTOL",
    "stream_seeds",
    "paper_protocol_batch",
    "run_vary",
    "run_phase",
    "run_rate",
    "run_landscape",
    "run_atlas",
]

#: Relative threshold for the numerical rank of ``A^ - A*``: errors below 1e-6 of the largest
#: singular value are solver round-off (the exact solvers stop near 1e-13 relative objective).
RANK_RTOL = 1e-6


# --------------------------------------------------------------------------- phase
def run_phase(config: PhaseConfig, seeds: tuple[int, ...]) -> pd.DataFrame:
    """Population LoRA-ML on a random family: the distance of the fitted base to ``A*``.

    The first start is the solver's default; the others start from random factors with
    ``N(0, 1)`` entries. The lowest objective is kept, since the theorems speak of global
    minima.
    """
    rows = []
    for seed in seeds:
        st = stream_seeds(seed, ("family", "starts"))
        fam = lt.TaskFamily.random(config.d, config.k, config.T, sigma=0.1, seed=st["family"])
        rng = np.random.default_rng(st["starts"])
        best = None
        for restart in range(config.restarts):
            U0 = None if restart == 0 else rng.standard_normal((config.T, config.d, config.k))
            fit = lt.fit_lora_ml(fam, k=config.k, method=config.solver, seed=rng, U0=U0)
            if best is None or fit.objective < best.objective:
                best = fit
        error = lt.metrics.base_error(best.A, fam.A_star, relative=True)
        rows.append({
            "seed": seed,
            "base_error": error,
            "objective": best.objective,
            # Below the solver's accuracy the error is round-off, whose rank means nothing.
            "error_rank": 0 if error < RECOVERED else lt.metrics.numerical_rank(
                best.A - fam.A_star, rtol=RANK_RTOL),
            "converged": bool(best.converged),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- rate
def run_rate(config: RateConfig, seeds: tuple[int, ...]) -> pd.DataFrame:
    """Excess loss after rank-k fine-tuning on ``n`` samples, from three retrained bases.

    Bases: LoRA-ML (exact solver on ``N`` samples per task), SR (same samples), and the
    oracle ``A*``. Fine-tuning: reduced-rank regression (the exact rank-k least-squares
    adapter), with the same ``n`` samples for all three bases.
    """
    rows = []
    for seed in seeds:
        st = stream_seeds(seed, ("family", "sample", "new_task", "init", "fine_tune"))
        fam = lt.TaskFamily.random(config.d, config.k, config.T, config.sigma, seed=st["family"])
        data = fam.sample(config.N, seed=st["sample"])
        new = fam.new_task(seed=st["new_task"])
        bases = {
            "LoRA-ML": lt.fit_lora_ml(data, k=config.k, method="exact", seed=st["init"]).A,
            "SR": lt.standard_retraining(data),
            "oracle": fam.A_star,
        }
        ft_seeds = stream_seeds(st["fine_tune"], [str(n) for n in config.n_grid])
        for n in config.n_grid:
            for method, A in bases.items():
                ft = lt.fine_tune(A, new, rank=config.k, n=n, seed=ft_seeds[str(n)],
                                  adapter="asymmetric", method="exact")
                rows.append({"seed": seed, "n": n, "method": method, "excess_loss": ft.loss})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- landscape
def run_landscape(config: LandscapeConfig, seeds: tuple[int, ...]) -> pd.DataFrame:
    """Many random starts of LoRA-ML on one population family per seed.

    Each start runs ``fit_lora_ml(method=config.solver)`` from ``A0 = 0`` and factors with
    i.i.d. ``N(0, 1)`` entries, to convergence.
    """
    rows = []
    for seed in seeds:
        st = stream_seeds(seed, ("family", "starts"))
        fam = lt.TaskFamily.random(config.d, config.k, config.T, sigma=0.1, seed=st["family"])
        rng = np.random.default_rng(st["starts"])
        for start in range(config.starts):
            U0 = rng.standard_normal((config.T, config.d, config.k))
            fit = lt.fit_lora_ml(fam, k=config.k, method=config.solver, seed=rng, U0=U0)
            rows.append({
                "seed": seed, "start": start, "objective": fit.objective,
                "base_error": lt.metrics.base_error(fit.A, fam.A_star, relative=True),
                "offset_error": float(np.mean(lt.metrics.offset_error(fit.U, fam.U_star))),
                "converged": bool(fit.converged), "n_iter": fit.n_iter,
            })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- registry
#: The vary set as the authors ran it, then its T and d sweeps with ``authors_quirks``.
VARY_SWEEP = vary_configs() + vary_configs(params=VARY_QUIRKS_PARAMS, authors_quirks=True)

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            name="vary",
            config_type=VaryConfig,
            title="Linear vary set: fine-tuning curves after LoRA-ML and SR retraining",
            claim="LoRA-ML retraining yields a base that a rank-k adapter fine-tunes to a low "
                  "test loss; SR's base leaves a floor (Theorem 1 against Theorems 3-4).",
            run=run_vary,
            # Both sizes run the authors' settings (steps, step counts, ground truth drawn
            # once and sliced), and the T and d sweeps again with their two quirks; quick
            # differs from full only in the number of seeds.
            quick=Sweep(VARY_SWEEP, seeds=(0, 1, 2)),
            full=Sweep(VARY_SWEEP, seeds=(0, 1, 2, 3, 4)),
            seeds_per_unit=None,
        ),
        Experiment(
            name="phase",
            config_type=PhaseConfig,
            title="Recovery phase diagram over T and k/d (population)",
            claim="T >= 3 recovers A* exactly (Theorem 3); T = 2 and T = 1 do not (Theorem 4).",
            run=run_phase,
            quick=Sweep(phase_configs(8, ks=(1, 2, 3, 4), Ts=tuple(range(1, 9)), restarts=2),
                        seeds=(0, 1, 2)),
            full=Sweep(phase_configs(12, ks=(1, 2, 3, 4, 6), Ts=tuple(range(1, 9)), restarts=3),
                       seeds=tuple(range(5))),
            # Each fit takes milliseconds: one unit per cell keeps the per-file overhead small.
            seeds_per_unit=None,
        ),
        Experiment(
            name="rate",
            config_type=RateConfig,
            title="Post-adaptation excess loss against n (log-log)",
            claim="From LoRA-ML's base the excess loss decays like k d sigma^2 / n; from SR's it "
                  "stalls at the Theorem 1 floor.",
            run=run_rate,
            quick=Sweep((RateConfig(n_grid=(20, 50, 100, 300, 1000, 3000, 10000)),),
                        seeds=(0, 1, 2)),
            full=Sweep((RateConfig(),), seeds=tuple(range(10))),
        ),
        Experiment(
            name="landscape",
            config_type=LandscapeConfig,
            title="Random starts: final objective and ||A^ - A*|| for T = 2 and T = 3",
            claim="T = 2: strict saddle, every start reaches zero loss but A^ != A* in general "
                  "(Theorem 4); T = 3: A^ = A* (Theorem 3).",
            run=run_landscape,
            quick=Sweep((LandscapeConfig(T=2, starts=50), LandscapeConfig(T=3, starts=50)),
                        seeds=(0, 1)),
            full=Sweep((LandscapeConfig(T=2, starts=200), LandscapeConfig(T=3, starts=200)),
                       seeds=(0, 1, 2)),
        ),
        SCHEMES,
        Experiment(
            name="atlas",
            config_type=AtlasConfig,
            title="Landscape atlas over (d, k, T): spurious minima and the paper protocol",
            claim="Spurious local minima exist for T >= 3 (appendix); the paper's protocol "
                  "reaches A* where Theorem 3 holds. Where in (d, k, T), and how fast?",
            run=run_atlas,
            # One random family per seed. Quick: every cell, a few families, a smaller search
            # and budget; full: 100 families per cell, 10 search starts, 10x the paper's rounds.
            quick=Sweep(atlas_configs(search_starts=4, rounds=10_000), seeds=tuple(range(6))),
            full=Sweep(atlas_configs(search_starts=10, rounds=30_000), seeds=tuple(range(100))),
            # The protocol runs of a unit's families advance as one batch.
            seeds_per_unit=50,
        ),
    )
}
