"""Fine-tuning a retrained model on an unseen task, and summaries over seeds.

Fine-tuning always starts from a *fresh* adapter or head drawn from ``seed`` (never one of the
retraining tasks'), so every retraining method starts fine-tuning from the same point: the
paper's "fixed random start shared by SR and LoRA-ML".
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .adapters import (
    adapter_parameters,
    attach_adapters,
    banks,
    remove_adapters,
    set_task,
)
from .data import TaskSet
from .methods import LossFn, task_loss
from .models import HEAD, seeded

__all__ = [
    "MODES",
    "FineTuneResult",
    "evaluate",
    "fresh_start",
    "fine_tune",
    "summarise",
]

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Fine-tuning modes: a fresh LoRA adapter on the targeted layers, or a fresh last layer.
MODES = ("lora", "last_layer")


@dataclass(frozen=True)
class FineTuneResult:
    """Outcome of :func:`fine_tune`.

    Attributes
    ----------
    test_loss : float
        Loss on the unseen task's test samples after fine-tuning.
    test_metric : float or None
        ``metric_fn`` on the test samples (e.g. accuracy), if one was given.
    initial_test_loss : float
        Test loss at the fresh start, before any fine-tuning step.
    history : ndarray of shape (evaluations,)
        Test loss every ``eval_every`` steps (first entry: the start).
    trainable : int
        Number of parameters fine-tuned.
    model : nn.Module
        The fine-tuned copy.
    """

    test_loss: float
    test_metric: float | None
    initial_test_loss: float
    history: np.ndarray
    trainable: int
    model: nn.Module


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: TaskSet,
    loss_fn: LossFn,
    metric_fn: MetricFn | None = None,
    batch_size: int | None = None,
) -> tuple[float, float | None]:
    """Return (mean loss, mean metric) of ``model`` on the one-task set ``data``.

    Evaluates in chunks of ``batch_size`` (None: all at once) and weights chunks by size.
    """
    model.eval()
    tensors = data.tasks[0]
    n = data.size(0)
    step = n if batch_size is None else batch_size
    loss_sum, metric_sum = 0.0, 0.0
    for start in range(0, n, step):
        chunk = tuple(x[start:start + step] for x in tensors)
        out = model(*chunk[:-1])
        m = out.shape[0]
        loss_sum += float(loss_fn(out, chunk[-1])) * m
        if metric_fn is not None:
            metric_sum += float(metric_fn(out, chunk[-1])) * m
    model.train()
    return loss_sum / n, (metric_sum / n if metric_fn is not None else None)


def fresh_start(
    model: nn.Module,
    mode: str,
    *,
    rank: int = 1,
    alpha: float | None = None,
    symmetric: bool = False,
    target_modules: Sequence[str] | None = None,
    head: str = HEAD,
    seed: int = 0,
) -> tuple[nn.Module, list[nn.Parameter]]:
    """A copy of ``model`` ready for fine-tuning, and the parameters to train.

    "lora": a fresh rank-``rank`` adapter on ``target_modules`` (all linear layers if None;
    the retraining banks' layers if the model has banks), drawn from ``seed``. "last_layer": a
    freshly initialised ``head`` drawn from ``seed``, retraining adapters dropped. Everything
    else is frozen. ``model`` itself is left untouched.

    Raises
    ------
    ValueError
        If ``mode`` is not one of :data:`MODES`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    model = copy.deepcopy(model)
    model.requires_grad_(False)
    device = next(model.parameters()).device
    if mode == "lora":
        if any(True for _ in banks(model)) and target_modules is None:
            target_modules = [name for name, _ in banks(model)]
        attach_adapters(
            model, 1, rank, alpha=alpha, symmetric=symmetric, target_modules=target_modules,
            seed=seed,
        )
        set_task(model, 0)
        params = adapter_parameters(model)
    else:
        remove_adapters(model)
        old = getattr(model, head)
        with seeded(seed):
            fresh = nn.Linear(old.in_features, old.out_features, bias=old.bias is not None)
        setattr(model, head, fresh.to(device=device, dtype=old.weight.dtype))
        params = list(getattr(model, head).parameters())
    for p in params:
        p.requires_grad_(True)
    return model, params


def fine_tune(
    model: nn.Module,
    train: TaskSet,
    test: TaskSet,
    loss_fn: LossFn,
    *,
    mode: str = "lora",
    steps: int,
    lr: float = 1e-3,
    rank: int = 1,
    alpha: float | None = None,
    symmetric: bool = False,
    target_modules: Sequence[str] | None = None,
    head: str = HEAD,
    batch_size: int | None = None,
    eval_every: int | None = None,
    eval_batch_size: int | None = None,
    metric_fn: MetricFn | None = None,
    seed: int = 0,
) -> FineTuneResult:
    """Fine-tune a copy of ``model`` on one unseen task from a fresh adapter or head.

    Parameters
    ----------
    model : nn.Module
        A retrained model (left untouched: a deep copy is fine-tuned). Any retraining
        adapters it carries are replaced.
    train, test : TaskSet
        The unseen task's n fine-tuning samples and its test samples (one task each).
    loss_fn : callable
    mode : {"lora", "last_layer"}
        "lora": a fresh rank-``rank`` adapter on ``target_modules`` (all linear layers if
        None), everything else frozen. "last_layer": a freshly initialised ``head`` layer,
        everything else frozen (retraining adapters are dropped, the base kept).
    steps : int
        AdamW steps.
    lr : float
    rank, alpha, symmetric, target_modules
        The fresh adapter's (LoRA mode).
    head : str
        Attribute name of the last layer (last-layer mode).
    batch_size : int, optional
        Mini-batch of the fine-tuning samples (None: full batch).
    eval_every : int, optional
        Record the test loss every this many steps (None: start and end only).
    eval_batch_size : int, optional
        Chunk size for evaluation.
    metric_fn : callable, optional
        ``metric_fn(outputs, target) -> scalar`` reported on the test set.
    seed : int
        Seed of the fresh adapter/head and of the mini-batches.

    Returns
    -------
    FineTuneResult

    Raises
    ------
    ValueError
        If ``mode`` is unknown, ``steps < 1`` or a set is not one task.
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if train.num_tasks != 1 or test.num_tasks != 1:
        raise ValueError("train and test must each hold exactly the unseen task")
    model, params = fresh_start(
        model, mode, rank=rank, alpha=alpha, symmetric=symmetric,
        target_modules=target_modules, head=head, seed=seed,
    )
    opt = torch.optim.AdamW(params, lr=lr)
    generator = torch.Generator().manual_seed(int(seed))
    initial, _ = evaluate(model, test, loss_fn, None, eval_batch_size)
    history = [initial]
    model.train()
    for step in range(1, int(steps) + 1):
        opt.zero_grad(set_to_none=True)
        task_loss(model, loss_fn, train.batch(0, batch_size, generator)).backward()
        opt.step()
        if eval_every and step % eval_every == 0 and step != steps:
            history.append(evaluate(model, test, loss_fn, None, eval_batch_size)[0])
    test_loss, test_metric = evaluate(model, test, loss_fn, metric_fn, eval_batch_size)
    history.append(test_loss)
    return FineTuneResult(
        test_loss=test_loss,
        test_metric=test_metric,
        initial_test_loss=initial,
        history=np.asarray(history),
        trainable=int(sum(p.numel() for p in params)),
        model=model,
    )


def summarise(
    table: pd.DataFrame, value: str, by: Sequence[str] = ("experiment", "method")
) -> pd.DataFrame:
    """Mean and standard error of ``value`` over seeds, one row per ``by`` group.

    Returns
    -------
    DataFrame
        Columns ``by``, ``mean``, ``se`` (sample std / sqrt(count); NaN for one seed), ``count``.
    """
    by = [c for c in by if c in table.columns]
    if value not in table.columns:
        raise ValueError(f"value {value!r} is not a column; columns are {list(table.columns)}")
    grouped = table.groupby(by, sort=False, dropna=False)[value]
    out = grouped.agg(mean="mean", std="std", count="count").reset_index()
    out["se"] = out["std"] / np.sqrt(out["count"])
    return out.drop(columns="std")[[*by, "mean", "se", "count"]]
