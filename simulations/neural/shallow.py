"""The shallow-network experiment, one (d, T) setting as one batched computation.

Every seed, method and fine-tuning rank of the setting trains in one stack
(:mod:`lowrank_theory.neural.shallow`).

One row per (seed, method, fine-tuning rank r):

- ``retrain_loss``: the retraining objective (mean task MSE) at the last step;
- ``base_error``: ||A - A*||_F / ||A*||_F of the retrained base;
- ``initial_test_loss``: test MSE of the retrained base before fine-tuning (the fresh adapter
  starts at B = 0, so every r shares it);
- ``test_loss`` / ``test_error``: MSE after fine-tuning on ``n_test`` fresh samples of the
  unseen task, against the noisy / the noise-free outputs;
- ``fit_error``: MSE against the noise-free outputs at the n fine-tuning inputs (the authors'
  reported quantity);
- ``noise_floor``: sigma^2, the Bayes test loss; ``mode``: ``cuda-graph`` or ``eager``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from lowrank_theory.simulations.neural.common import (
    DATA,
    FINETUNE,
    MODEL,
    SPLIT,
    TRAIN,
    compute_context,
    provenance,
    sub_seed,
)
from lowrank_theory.simulations.neural.configs import ShallowConfig

from lowrank_theory.neural.data import shallow_teacher
from lowrank_theory.neural.shallow import (
    ShallowStack,
    adapter_start,
    init_stack,
    stack_errors,
    train_stack,
)

__all__ = [
    "run_shallow",
]


def _samples(config: ShallowConfig, seed: int) -> dict[str, torch.Tensor]:
    """One seed's teacher and samples: retraining (T, N), fine-tuning (n) and test (n_test)."""
    d, T = config.d, config.T
    teacher = shallow_teacher(d, config.k, T, config.sigma, sub_seed(seed, DATA, d, T),
                              symmetric_base=config.symmetric_base, input_std=config.input_std)
    g = torch.Generator().manual_seed(sub_seed(seed, SPLIT, d, T))
    retrain = [teacher.sample(t, config.N, g) for t in range(T)]
    ft = teacher.sample(T, config.n, g)
    test = teacher.sample(T, config.n_test, g)
    return {
        "X": torch.stack([s[0] for s in retrain]), "y": torch.stack([s[1] for s in retrain]),
        "X_ft": ft[0], "y_ft": ft[1], "clean_ft": ft[2],
        "X_test": test[0], "y_test": test[1], "clean_test": test[2], "A_star": teacher.A,
    }


def _finetune_stack(retrained: ShallowStack, config: ShallowConfig, seeds: tuple[int, ...],
                    per_seed: int) -> tuple[ShallowStack, list[tuple[int, int]]]:
    # Model (i, r): retrained model i with a fresh adapter of rank r, padded to the largest
    # rank (mask 0 on the padding); the start depends on the seed only, so SR and LoRA-ML of
    # one seed share it.
    ranks = config.finetune_ranks
    R, d = max(ranks), config.d
    index, A, V, masks = [], [], [], []
    for i in range(retrained.num_models):
        seed = seeds[i // per_seed]
        start = adapter_start(d, 1, R, sub_seed(seed, FINETUNE, d, config.T))[0]
        for r in ranks:
            index.append((i, r))
            A.append(retrained.weight[i])
            V.append(start)
            masks.append([1.0] * r + [0.0] * (R - r))
    stack = ShallowStack(
        weight=torch.stack(A).cpu(), head=retrained.head[[i for i, _ in index]].cpu(),
        lora_A=torch.stack(V), lora_B=torch.zeros(len(index), 1, d, R),
        mask=torch.tensor(masks),
    )
    return stack, index


def run_shallow(
    config: ShallowConfig,
    seeds: tuple[int, ...],
    *,
    device: str = "cpu",
    threads: int | None = None,
    graph: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Retrain and fine-tune every (seed, method) of one setting; return the tidy rows.

    Parameters
    ----------
    config : ShallowConfig
    seeds : tuple of int
        All are trained together, as one stack.
    device : str
        A torch device ("cpu", "cuda", "cuda:1", "mps").
    threads : int, optional
        CPU threads for torch (default: every CPU this process may use); ignored off-CPU.
    graph : bool, default True
        Replay fixed-shape chunks of steps as CUDA graphs on CUDA.
    progress : bool
        Show progress bars.

    Returns
    -------
    DataFrame
        One row per (seed, method, fine-tuning rank); columns in the module notes.
    """
    seeds = tuple(int(s) for s in seeds)
    d, T, k = config.d, config.T, config.k
    methods = config.methods
    G = len(methods)
    with compute_context(device, threads) as dev:
        data = [_samples(config, s) for s in seeds]
        order = [(s, m) for s in range(len(seeds)) for m in methods]  # model i <-> (seed, method)
        masks = torch.tensor([[1.0 if m == "lora_ml" else 0.0] * k for _, m in order])
        start = init_stack(
            d, T, k,
            model_seeds=[sub_seed(seeds[s], MODEL, d, T) for s, _ in order],
            adapter_seeds=[sub_seed(seeds[s], TRAIN, d, T) for s, _ in order],
            masks=masks,
        )
        X = torch.stack([data[s]["X"] for s, _ in order]).to(dev)
        y = torch.stack([data[s]["y"] for s, _ in order]).to(dev)
        label = f"d={d} T={T}"
        retrained = train_stack(
            start, X, y, steps=config.retrain_steps, lr=config.lr,
            weight_decay=config.weight_decay, graph=graph, progress=progress,
            desc=f"retrain {label}",
        )
        del X, y
        ft_start, index = _finetune_stack(retrained.stack, config, seeds, G)
        per_model = [order[i][0] for i, _ in index]
        X_ft = torch.stack([data[s]["X_ft"] for s in per_model])[:, None].to(dev)
        y_ft = torch.stack([data[s]["y_ft"] for s in per_model])[:, None].to(dev)
        tuned = train_stack(
            ft_start, X_ft, y_ft, steps=config.finetune_steps, lr=config.finetune_lr,
            weight_decay=config.weight_decay, train_base=False, graph=graph,
            progress=progress, desc=f"fine-tune {label}",
        ).stack

        def errors(stack: ShallowStack, key: str, target: str) -> np.ndarray:
            X_eval = torch.stack([data[s][key] for s in per_model]).to(dev)
            return stack_errors(stack, X_eval, torch.stack([data[s][target] for s in
                                                            per_model]).to(dev))

        test_loss = errors(tuned, "X_test", "y_test")
        test_error = errors(tuned, "X_test", "clean_test")
        fit_error = errors(tuned, "X_ft", "clean_ft")
        initial = errors(ft_start.to(dev), "X_test", "y_test")
        weights = retrained.stack.weight.cpu()
    extra = provenance(dev)
    rows: list[dict[str, Any]] = []
    for j, (i, r) in enumerate(index):
        s, method = order[i]
        A_star = data[s]["A_star"]
        rows.append({
            "seed": seeds[s], "method": method, "ft_rank": r,
            "retrain_loss": float(retrained.history[-1, i]),
            "base_error": float(torch.linalg.norm(weights[i] - A_star) / torch.linalg.norm(A_star)),
            "initial_test_loss": float(initial[j]), "test_loss": float(test_loss[j]),
            "test_error": float(test_error[j]), "fit_error": float(fit_error[j]),
            "noise_floor": config.sigma**2, "mode": retrained.mode, **extra,
        })
    return pd.DataFrame(rows)
