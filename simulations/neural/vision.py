"""The vision experiment: class-pair tasks, an MLP-Mixer, every seed of a method at once.

SR, LoRA-ML and last-layer meta-learning, and both fine-tuning modes, train the models of all
seeds as one vmapped stack (:mod:`lowrank_theory.neural.stacked`); Reptile and MAML run one
model at a time. One row per (seed, method, fine-tuning mode): ``retrain_loss``,
``initial_test_loss``, ``test_loss``, ``test_accuracy`` on the unseen pair's test images.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pandas as pd
import torch
from lowrank_theory.simulations.neural.common import (
    FINETUNE,
    MODEL,
    SPLIT,
    TRAIN,
    bce,
    binary_accuracy,
    compute_context,
    provenance,
    sub_seed,
)
from lowrank_theory.simulations.neural.configs import VisionConfig

from lowrank_theory.neural import methods as M
from lowrank_theory.neural.adapters import attach_adapters
from lowrank_theory.neural.data import (
    CIFAR_BLACK,
    DataMissingError,
    PairTasks,
    TaskSet,
    cifar_folder,
    load_cifar_pairs,
    load_digits_pairs,
    random_crop_flip,
)
from lowrank_theory.neural.models import MLPMixer, seeded
from lowrank_theory.neural.stacked import stacked_fine_tune, stacked_training

__all__ = [
    "STACKED",
    "EVAL_CHUNK",
    "check_cifar",
    "load_pairs",
    "run_vision",
]

#: Methods trained as one stack over seeds; the others run one model at a time.
STACKED = ("sr", "lora_ml", "last_layer_ml")
#: Test images per evaluation chunk.
EVAL_CHUNK = 1000


def check_cifar(data_dir: str | None) -> None:
    """Check that ``data_dir`` holds CIFAR-10's python batches (cheap: no file is read).

    Raises
    ------
    DataMissingError
        If ``data_dir`` is None or lacks the files; the message says where to get them.
    """
    if data_dir is None:
        raise DataMissingError(
            "the paper-size vision experiment reads CIFAR-10 from disk: pass --data-dir DIR "
            "where DIR/cifar-10-batches-py holds the python version of CIFAR-10 "
            "(https://www.cs.toronto.edu/~kriz/cifar.html)"
        )
    cifar_folder(data_dir)


def load_pairs(config: VisionConfig, data_dir: str | None) -> PairTasks:
    """The config's class-pair tasks: bundled digits, or CIFAR-10 from ``data_dir``.

    Raises
    ------
    DataMissingError
        If the config reads CIFAR-10 and ``data_dir`` is None or lacks the files.
    """
    if config.dataset == "digits":
        return load_digits_pairs(config.retrain_pairs, config.test_pair, seed=0)
    check_cifar(data_dir)
    return load_cifar_pairs(data_dir, config.retrain_pairs, config.test_pair)


def _model(config: VisionConfig, seed: int, device: torch.device) -> MLPMixer:
    with seeded(sub_seed(seed, MODEL)):
        model = MLPMixer(config.image_size, config.channels, config.patch, config.width,
                         config.depth, config.token_hidden, config.channel_hidden)
    return model.to(device)


def _retrain(config: VisionConfig, method: str, seeds: tuple[int, ...], tasks: TaskSet,
             device: torch.device, transform: Any, progress: bool) -> tuple[list, list[float]]:
    models = [_model(config, s, device) for s in seeds]
    if method in STACKED:
        if method == "lora_ml":
            for model, s in zip(models, seeds, strict=True):
                attach_adapters(model, tasks.num_tasks, config.rank, seed=sub_seed(s, TRAIN))
        elif method == "last_layer_ml":
            for model in models:
                M.attach_task_heads(model, tasks.num_tasks)
        history = stacked_training(
            models, [tasks] * len(models), bce, steps=config.retrain_steps, lr=config.lr,
            seeds=[sub_seed(s, TRAIN) for s in seeds], weight_decay=config.weight_decay,
            batch_size=config.batch_size, optimizer=config.optimizer,
            schedule=config.schedule, transform=transform, desc=method, progress=progress,
        )
        for model in models:
            M.select_task(model, None)
            if method == "last_layer_ml":
                M.merge_task_heads(model)
        return models, [float(v) for v in history[-1]]
    losses = []
    for model, s in zip(models, seeds, strict=True):
        result = M.retrain(
            method, model, tasks, bce, steps=config.retrain_steps, lr=config.lr,
            rank=config.rank, alpha=None, symmetric=False, target_modules=None,
            batch_size=config.batch_size, inner_steps=config.reptile_inner_steps,
            inner_lr=config.reptile_inner_lr, meta_lr=config.reptile_meta_lr,
            seed=sub_seed(s, TRAIN), progress=progress,
        )
        losses.append(float(result.history[-1]))
    return models, losses


def run_vision(
    config: VisionConfig,
    seeds: tuple[int, ...],
    *,
    device: str = "cpu",
    data_dir: str | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Retrain with every method and fine-tune in every mode, for all ``seeds`` together.

    Parameters
    ----------
    config : VisionConfig
    seeds : tuple of int
    device : str
        A torch device.
    data_dir : str, optional
        Folder holding ``cifar-10-batches-py`` (CIFAR-10 configs only).
    threads : int, optional
        CPU threads for torch (default: every CPU this process may use).
    progress : bool
        Show progress bars.

    Returns
    -------
    DataFrame
        One row per (seed, method, fine-tuning mode).
    """
    seeds = tuple(int(s) for s in seeds)
    pairs = load_pairs(config, data_dir)
    pool = pairs.new_train
    if config.n_finetune > pool.size(0):
        raise ValueError(f"n_finetune={config.n_finetune} exceeds the unseen pair's "
                         f"{pool.size(0)} training images")
    transform = partial(random_crop_flip, fill=CIFAR_BLACK) if config.augment else None
    rows: list[dict[str, Any]] = []
    with compute_context(device, threads) as dev:
        tasks = pairs.retrain.to(dev)
        new_test = pairs.new_test.to(dev)
        new_train = []
        for s in seeds:
            g = torch.Generator().manual_seed(sub_seed(s, SPLIT))
            new_train.append(TaskSet((pool.batch(0, config.n_finetune, g),)).to(dev))
        for method in config.methods:
            models, losses = _retrain(config, method, seeds, tasks, dev, transform, progress)
            for mode in config.finetune_modes:
                results = stacked_fine_tune(
                    models, new_train, new_test, bce, mode=mode, steps=config.finetune_steps,
                    lr=config.finetune_lr, seeds=[sub_seed(s, FINETUNE) for s in seeds],
                    rank=config.finetune_rank, batch_size=config.finetune_batch_size,
                    weight_decay=config.weight_decay, optimizer=config.optimizer,
                    schedule=config.schedule, transform=transform,
                    eval_batch_size=EVAL_CHUNK, metric_fn=binary_accuracy, progress=progress,
                )
                for s, loss, ft in zip(seeds, losses, results, strict=True):
                    rows.append({
                        "seed": s, "dataset": config.dataset, "method": method, "finetune": mode,
                        "retrain_loss": loss, "initial_test_loss": ft.initial_test_loss,
                        "test_loss": ft.test_loss, "test_accuracy": ft.test_metric,
                        **provenance(dev),
                    })
    return pd.DataFrame(rows)
