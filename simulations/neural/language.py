"""The language experiment: persona groups as tasks, RoBERTa scoring 20 candidate replies.

One unit per seed (RoBERTa models are not stacked). One row per (seed, method, fine-tuning
mode): ``data``, ``model``, ``retrain_loss``, ``initial_test_loss``, ``test_loss``,
``test_accuracy`` (hits@1 of 20), ``n_finetune``.
"""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import torch
from lowrank_theory.simulations.neural.common import (
    FINETUNE,
    MODEL,
    SPLIT,
    TRAIN,
    compute_context,
    provenance,
    sub_seed,
)
from lowrank_theory.simulations.neural.configs import LanguageConfig
from torch.nn import functional as F

from lowrank_theory.neural.data import TaskSet
from lowrank_theory.neural.finetune import fine_tune
from lowrank_theory.neural.language import (
    encode,
    language_tasks,
    load_roberta,
    tiny_roberta,
    word_tokenizer,
)
from lowrank_theory.neural.methods import retrain
from lowrank_theory.neural.models import CandidateScorer, seeded

__all__ = [
    "cross_entropy",
    "hits_at_1",
    "tasks_of",
    "run_language",
]


def cross_entropy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the candidates' scores against the right candidate's index."""
    return F.cross_entropy(scores, labels)


def hits_at_1(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of examples whose top-scored candidate is the right one."""
    return (scores.argmax(dim=-1) == labels).to(torch.float32).mean()


def tasks_of(config: LanguageConfig, data_dir: str | None, seed: int = 0):
    """The config's persona groups (see :func:`lowrank_theory.neural.language.language_tasks`)."""
    return language_tasks(
        config.num_tasks, config.examples_per_task, config.n_finetune, config.n_test, data_dir,
        synthetic_fallback=config.tiny_model, seed=seed,
    )


def _run_seed(config: LanguageConfig, seed: int, dev: torch.device, data_dir: str | None,
              model_dir: str | None, progress: bool) -> list[dict[str, Any]]:
    groups, source = tasks_of(config, data_dir, seed=sub_seed(seed, SPLIT))
    if config.tiny_model and model_dir is None:
        texts = [ex.context for g in groups for ex in g]
        texts += [c for g in groups for ex in g for c in ex.candidates]
        tokenizer = word_tokenizer(texts)

        def build() -> torch.nn.Module:
            return tiny_roberta(len(tokenizer), hidden=config.hidden, max_length=config.max_length)

        model_name = "tiny-roberta"
    else:
        pretrained, tokenizer = load_roberta(model_dir)

        def build() -> torch.nn.Module:
            return copy.deepcopy(pretrained)

        model_name = "roberta-base"
    encoded = [encode(g, tokenizer, config.max_length) for g in groups]
    tasks = TaskSet(tuple(encoded[: config.num_tasks])).to(dev)
    unseen = encoded[config.num_tasks]
    k = config.n_finetune
    new_train = TaskSet((tuple(x[:k] for x in unseen),)).to(dev)
    new_test = TaskSet((tuple(x[k:] for x in unseen),)).to(dev)
    rows = []
    for method in config.methods:
        with seeded(sub_seed(seed, MODEL)):
            model = CandidateScorer(build()).to(dev)
        result = retrain(
            method, model, tasks, cross_entropy, steps=config.retrain_steps, lr=config.lr,
            rank=config.rank, alpha=config.alpha, symmetric=False, target_modules=None,
            batch_size=config.batch_size, inner_steps=config.reptile_inner_steps,
            inner_lr=config.lr, meta_lr=config.reptile_meta_lr, seed=sub_seed(seed, TRAIN),
            progress=progress,
        )
        for mode in config.finetune_modes:
            ft = fine_tune(
                result.model, new_train, new_test, cross_entropy, mode=mode,
                steps=config.finetune_steps, lr=config.finetune_lr, rank=config.rank,
                alpha=config.alpha, target_modules=None, batch_size=config.batch_size,
                eval_batch_size=32, metric_fn=hits_at_1, seed=sub_seed(seed, FINETUNE),
            )
            rows.append({
                "seed": seed, "data": source, "model": model_name, "method": method,
                "finetune": mode, "retrain_loss": float(result.history[-1]),
                "initial_test_loss": ft.initial_test_loss, "test_loss": ft.test_loss,
                "test_accuracy": ft.test_metric, "n_finetune": config.n_finetune,
                **provenance(dev),
            })
    return rows


def run_language(
    config: LanguageConfig,
    seeds: tuple[int, ...],
    *,
    device: str = "cpu",
    data_dir: str | None = None,
    model_dir: str | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Run every (method, fine-tuning mode) for each seed; return the tidy rows.

    Parameters
    ----------
    config : LanguageConfig
    seeds : tuple of int
    device : str
        A torch device.
    data_dir : str, optional
        Folder holding a ConvAI2 file (required unless ``config.tiny_model``).
    model_dir : str, optional
        Local ``roberta-base`` folder (required unless ``config.tiny_model``).
    threads : int, optional
        CPU threads for torch (default: every CPU this process may use).
    progress : bool
        Show progress bars.

    Returns
    -------
    DataFrame
    """
    with compute_context(device, threads) as dev:
        rows = [row for s in seeds
                for row in _run_seed(config, int(s), dev, data_dir, model_dir, progress)]
    return pd.DataFrame(rows)
