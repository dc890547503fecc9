"""Train M networks of one architecture as one vmapped computation (``torch.func``).

The M models (one per seed, say) are stacked parameter by parameter
(``torch.func.stack_module_state``: every tensor gains a leading model axis) and called through
``functional_call`` under ``vmap``. Each step sums the models' losses, so each stacked slice
receives its own model's gradient, and the optimiser (Adam or AdamW, elementwise) makes each
model's own update: the M models follow the iterates they would follow one at a time, with one
kernel launch per layer instead of M. Each model keeps its own mini-batch generator, so it also
draws the batches it would draw alone.

:func:`stacked_training` is the stacked form of the joint loop of SR, LoRA-ML and last-layer
meta-learning (:mod:`~lowrank_theory.neural.methods`), :func:`stacked_fine_tune` the stacked form
of :func:`~lowrank_theory.neural.finetune.fine_tune`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .data import TaskSet
from .finetune import FineTuneResult, MetricFn, evaluate, fresh_start
from .methods import WEIGHT_DECAY, LossFn, select_task
from .models import HEAD

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "stacked_training",
    "stacked_fine_tune",
]

#: Optimisers :func:`stacked_training` offers: AdamW (decoupled decay, the default of the
#: methods) and Adam with an L2 penalty (the authors' vision scripts).
OPTIMIZERS = ("adamw", "adam")
#: Learning-rate schedules: constant, or cosine annealing to 0 over the run.
SCHEDULES = ("constant", "cosine")

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _stacked_batch(
    tasks: Sequence[TaskSet],
    t: int,
    batch_size: int | None,
    generators: Sequence[torch.Generator],
    transform: Transform | None,
) -> tuple[torch.Tensor, ...]:
    # Each model draws its own batch with its own generator, exactly as it would alone.
    if batch_size is None and transform is None and all(ts is tasks[0] for ts in tasks):
        return tuple(x.expand(len(tasks), *x.shape) for x in tasks[0].tasks[t])
    per_model = []
    for ts, g in zip(tasks, generators, strict=True):
        batch = ts.batch(t, batch_size, g)
        if transform is not None:
            batch = (transform(batch[0], g), *batch[1:])
        per_model.append(batch)
    sizes = {b[0].shape[0] for b in per_model}
    if len(sizes) != 1:
        raise ValueError(f"task {t} gives batches of different sizes {sorted(sizes)} to the "
                         "stacked models; give every model a task of the same size")
    return tuple(torch.stack(xs) for xs in zip(*per_model, strict=True))


def stacked_training(
    models: Sequence[nn.Module],
    tasks: Sequence[TaskSet],
    loss_fn: LossFn,
    *,
    steps: int,
    lr: float,
    seeds: Sequence[int],
    weight_decay: float = WEIGHT_DECAY,
    batch_size: int | None = None,
    optimizer: str = "adamw",
    schedule: str = "constant",
    transform: Transform | None = None,
    desc: str = "stacked",
    progress: bool = False,
) -> np.ndarray:
    """Train ``models`` in place on (1/T) sum_t L_t, all at once.

    Parameters
    ----------
    models : sequence of nn.Module
        M models of one architecture on one device. Their parameters with
        ``requires_grad=True`` are trained; adapter banks and task heads are switched by
        :func:`~lowrank_theory.neural.methods.select_task`.
    tasks : sequence of TaskSet
        Model m's tasks (the same object may serve every model). Every model must have the
        same number of tasks and, task by task, the same batch size.
    loss_fn : callable
        ``loss_fn(outputs, target) -> scalar`` of one model.
    steps : int
        Optimiser steps; each sees one mini-batch of every task.
    lr, weight_decay : float
        The optimiser's.
    seeds : sequence of int
        Model m's mini-batch generator seed (as ``seed`` of the one-model methods).
    batch_size : int, optional
        Per-task mini-batch (None: full batch).
    optimizer : {"adamw", "adam"}
        AdamW, or Adam with ``weight_decay`` as an L2 penalty.
    schedule : {"constant", "cosine"}
        Cosine annealing of the learning rate to 0 over ``steps`` (torch's
        ``CosineAnnealingLR``), or none.
    transform : callable, optional
        ``transform(inputs, generator)`` applied to model m's batch inputs with its generator
        (data augmentation).
    desc : str
        Progress bar label.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    ndarray of shape (steps, M)
        Each model's mean training loss over tasks at each step.

    Raises
    ------
    ValueError
        On an empty model list, mismatched lengths, unknown optimiser or schedule,
        ``steps < 1``, or tasks that differ in number between models.
    """
    M = len(models)
    if M == 0 or len(tasks) != M or len(seeds) != M:
        raise ValueError(f"need one TaskSet and one seed per model, got {M} models, "
                         f"{len(tasks)} task sets and {len(seeds)} seeds")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    T = tasks[0].num_tasks
    if any(ts.num_tasks != T for ts in tasks):
        raise ValueError("every model needs the same number of tasks")
    template = copy.deepcopy(models[0])
    template.train()
    params, buffers = stack_module_state(list(models))
    trainable = [p for p in params.values() if p.requires_grad]
    if not trainable:
        raise ValueError("the models have no parameter with requires_grad=True")
    if optimizer == "adamw":
        opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(trainable, lr=lr, weight_decay=weight_decay)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(steps))
                 if schedule == "cosine" else None)

    def one_loss(p, b, *batch):
        return loss_fn(functional_call(template, (p, b), batch[:-1]), batch[-1])

    losses_of = vmap(one_loss)
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    history = np.empty((int(steps), M))
    from tqdm.auto import trange

    for step in trange(int(steps), desc=desc, disable=not progress, leave=False):
        opt.zero_grad(set_to_none=True)
        total = torch.zeros(M, device=trainable[0].device)
        for t in range(T):
            select_task(template, t)
            batch = _stacked_batch(tasks, t, batch_size, generators, transform)
            losses = losses_of(params, buffers, *batch) / T
            losses.sum().backward()
            total += losses.detach()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        history[step] = total.cpu().numpy()
    select_task(template, None)
    with torch.no_grad():
        for i, model in enumerate(models):
            for name, p in model.named_parameters():
                p.copy_(params[name][i])
    return history


def stacked_fine_tune(
    models: Sequence[nn.Module],
    train: Sequence[TaskSet],
    test: TaskSet,
    loss_fn: LossFn,
    *,
    mode: str = "lora",
    steps: int,
    lr: float = 1e-3,
    seeds: Sequence[int],
    rank: int = 1,
    alpha: float | None = None,
    symmetric: bool = False,
    target_modules: Sequence[str] | None = None,
    head: str = HEAD,
    batch_size: int | None = None,
    weight_decay: float = WEIGHT_DECAY,
    optimizer: str = "adamw",
    schedule: str = "constant",
    transform: Transform | None = None,
    eval_batch_size: int | None = None,
    metric_fn: MetricFn | None = None,
    progress: bool = False,
) -> list[FineTuneResult]:
    """Fine-tune a copy of every model from a fresh adapter or head, all at once.

    The stacked form of :func:`~lowrank_theory.neural.finetune.fine_tune`: model m starts
    from :func:`~lowrank_theory.neural.finetune.fresh_start` with ``seeds[m]``, draws its
    mini-batches of ``train[m]`` with ``seeds[m]`` and is evaluated on ``test``. The results'
    ``history`` holds the test loss at the start and at the end only.

    Returns
    -------
    list of FineTuneResult
        One per model, in order.
    """
    if len(train) != len(models) or len(seeds) != len(models):
        raise ValueError("need one fine-tuning set and one seed per model")
    if any(ts.num_tasks != 1 for ts in train) or test.num_tasks != 1:
        raise ValueError("train and test must each hold exactly the unseen task")
    started = [
        fresh_start(m, mode, rank=rank, alpha=alpha, symmetric=symmetric,
                    target_modules=target_modules, head=head, seed=s)
        for m, s in zip(models, seeds, strict=True)
    ]
    tuned = [m for m, _ in started]
    initial = [evaluate(m, test, loss_fn, None, eval_batch_size)[0] for m in tuned]
    stacked_training(
        tuned, train, loss_fn, steps=steps, lr=lr, seeds=seeds, weight_decay=weight_decay,
        batch_size=batch_size, optimizer=optimizer, schedule=schedule, transform=transform,
        desc=f"fine-tune ({mode})", progress=progress,
    )
    out = []
    for model, (_, params), start in zip(tuned, started, initial, strict=True):
        loss, metric = evaluate(model, test, loss_fn, metric_fn, eval_batch_size)
        out.append(FineTuneResult(
            test_loss=loss, test_metric=metric, initial_test_loss=start,
            history=np.asarray([start, loss]), trainable=int(sum(p.numel() for p in params)),
            model=model,
        ))
    return out
