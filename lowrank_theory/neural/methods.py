"""Retraining methods over one task iterator: SR, LoRA-ML, last-layer ML, Reptile, MAML.

Each method takes a model, a :class:`~lowrank_theory.neural.data.TaskSet` and a loss
``loss_fn(outputs, target) -> scalar``, trains in place and returns a :class:`RetrainResult`
whose model is ready for :func:`~lowrank_theory.neural.finetune.fine_tune`:

- ``standard_retraining`` (SR): one shared model, min_theta (1/T) sum_t L_t(theta).
- ``lora_ml``: base plus one adapter per task, trained jointly:
  min_{theta, Delta_1..T} (1/T) sum_t L_t(theta + Delta_t) (the linear LoRA-ML objective, on networks).
- ``last_layer_ml``: a shared body and one head per task, trained jointly.
- ``reptile``: adapt a copy to each task for a few steps, move the base toward the mean of the
  adapted copies.
- ``maml``: min_theta (1/T) sum_t L_t^query(theta - a grad L_t^support(theta)), written with
  ``torch.func`` (functional_call, grad, vmap); ``first_order=True`` drops the Hessian term.

The per-task losses are averaged (not summed) so a learning rate means the same for every T.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from .adapters import attach_adapters, banks, set_task
from .data import TaskSet
from .models import HEAD

__all__ = [
    "WEIGHT_DECAY",
    "RetrainResult",
    "task_loss",
    "standard_retraining",
    "lora_ml",
    "TaskHeads",
    "select_task",
    "attach_task_heads",
    "merge_task_heads",
    "last_layer_ml",
    "reptile",
    "maml_meta_gradient",
    "maml",
    "RETRAIN_METHODS",
    "retrain",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, ...]

#: AdamW's default weight decay, as in ``torch.optim.AdamW`` (the paper's optimiser).
WEIGHT_DECAY = 0.01


@dataclass(frozen=True)
class RetrainResult:
    """Outcome of a retraining method.

    Attributes
    ----------
    method : str
        "sr", "lora_ml", "last_layer_ml", "reptile" or "maml".
    model : nn.Module
        The retrained model (trained in place). LoRA-ML's carries banks with the T task
        adapters, none active; last-layer ML's head is the mean of the task heads.
    history : ndarray of shape (steps,)
        Mean training loss over tasks at each step (for Reptile/MAML: the pre-adaptation loss
        on the step's batches).
    """

    method: str
    model: nn.Module
    history: np.ndarray


def task_loss(model: nn.Module, loss_fn: LossFn, batch: Batch) -> torch.Tensor:
    """Return ``loss_fn(model(*inputs), target)`` for ``batch = (inputs..., target)``."""
    return loss_fn(model(*batch[:-1]), batch[-1])


def _progress(steps: int, desc: str, progress: bool):
    from tqdm.auto import trange

    return trange(steps, desc=desc, disable=not progress, leave=False)


def _check_steps(steps: int, name: str = "steps") -> int:
    if int(steps) < 1:
        raise ValueError(f"{name} must be >= 1, got {steps}")
    return int(steps)


def _joint_training(
    model: nn.Module,
    tasks: TaskSet,
    loss_fn: LossFn,
    select: Callable[[int], None],
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    batch_size: int | None,
    seed: int,
    desc: str,
    progress: bool,
    parameters: Sequence[nn.Parameter] | None = None,
) -> np.ndarray:
    # Shared loop of SR, LoRA-ML and last-layer ML: select(t) makes task t's parameters live.
    steps = _check_steps(steps)
    params = list(model.parameters()) if parameters is None else list(parameters)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(int(seed))
    history = np.empty(steps)
    model.train()
    for step in _progress(steps, desc, progress):
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for t, batch in enumerate(tasks.batches(batch_size, generator)):
            select(t)
            loss = task_loss(model, loss_fn, batch) / tasks.num_tasks
            loss.backward()
            total += float(loss.detach())
        opt.step()
        history[step] = total
    return history


def standard_retraining(
    model: nn.Module,
    tasks: TaskSet,
    loss_fn: LossFn,
    *,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = WEIGHT_DECAY,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> RetrainResult:
    """Standard retraining: one model for all tasks, AdamW on (1/T) sum_t L_t(theta).

    Parameters
    ----------
    model : nn.Module
        Trained in place.
    tasks : TaskSet
        The T retraining tasks.
    loss_fn : callable
        ``loss_fn(outputs, target) -> scalar`` (mean over the batch).
    steps : int
        Optimiser steps; each sees one mini-batch of every task.
    lr, weight_decay : float
        AdamW's.
    batch_size : int, optional
        Per-task mini-batch (None: full batch).
    seed : int
        Seed of the mini-batch draws.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    RetrainResult
    """
    history = _joint_training(
        model, tasks, loss_fn, lambda t: None, steps=steps, lr=lr, weight_decay=weight_decay,
        batch_size=batch_size, seed=seed, desc="SR", progress=progress,
    )
    return RetrainResult("sr", model, history)


def lora_ml(
    model: nn.Module,
    tasks: TaskSet,
    loss_fn: LossFn,
    *,
    rank: int,
    steps: int,
    alpha: float | None = None,
    symmetric: bool = False,
    target_modules: Sequence[str] | None = None,
    lr: float = 1e-3,
    weight_decay: float = WEIGHT_DECAY,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> RetrainResult:
    """LoRA-ML: base and T per-task adapters, trained jointly with AdamW.

    Minimises (1/T) sum_t L_t(theta + Delta_t) over the base theta and the rank-``rank``
    adapters Delta_t on the ``target_modules`` linear layers (all linear layers if None);
    the network analogue of the linear objective F(A, U) = sum_t L_t(A + U_t U_t^T). Parameters as in
    :func:`standard_retraining`, plus those of
    :func:`~lowrank_theory.neural.adapters.attach_adapters`; ``seed`` also seeds the
    adapters' start.
    """
    attach_adapters(
        model, tasks.num_tasks, rank, alpha=alpha, symmetric=symmetric,
        target_modules=target_modules, seed=seed,
    )
    history = _joint_training(
        model, tasks, loss_fn, lambda t: set_task(model, t), steps=steps, lr=lr,
        weight_decay=weight_decay, batch_size=batch_size, seed=seed, desc="LoRA-ML",
        progress=progress,
    )
    set_task(model, None)
    return RetrainResult("lora_ml", model, history)


class TaskHeads(nn.Module):
    """T copies of a linear last layer, one per task, with the active task's applied.

    Last-layer meta-learning's per-task heads as one module, so that a model carrying it is an
    ordinary module (it can be copied, stacked and called functionally like any other) and
    :func:`select_task` switches it as it switches adapter banks.

    Parameters
    ----------
    head : nn.Linear
        The layer each task's head starts as (copied T times).
    num_tasks : int
        T.
    """

    def __init__(self, head: nn.Linear, num_tasks: int) -> None:
        super().__init__()
        if not isinstance(head, nn.Linear):
            raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
        self.heads = nn.ModuleList(copy.deepcopy(head) for _ in range(int(num_tasks)))
        self.active_task: int | None = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the active task's head."""
        return self.heads[self.active_task or 0](x)

    def mean_head(self) -> nn.Linear:
        """A new ``nn.Linear`` whose weight and bias are the means of the task heads'."""
        out = copy.deepcopy(self.heads[0])
        with torch.no_grad():
            for name, p in out.named_parameters():
                p.copy_(torch.stack([getattr(h, name) for h in self.heads]).mean(dim=0))
        return out


def select_task(model: nn.Module, task: int | None) -> None:
    """Make ``task`` the active one of every adapter bank and task-head module of ``model``."""
    if any(True for _ in banks(model)):
        set_task(model, task)
    for module in model.modules():
        if isinstance(module, TaskHeads):
            module.active_task = task


def attach_task_heads(model: nn.Module, num_tasks: int, head: str = HEAD) -> TaskHeads:
    """Replace ``model.<head>`` by :class:`TaskHeads` of ``num_tasks`` copies; return it."""
    base_head = getattr(model, head)
    heads = TaskHeads(base_head, num_tasks)
    setattr(model, head, heads)
    return heads


def merge_task_heads(model: nn.Module, head: str = HEAD) -> None:
    """Replace the :class:`TaskHeads` at ``model.<head>`` by the mean of its heads.

    Later LoRA fine-tuning then does not start from one retraining task's head (last-layer
    fine-tuning replaces it by a fresh head anyway).
    """
    heads = getattr(model, head)
    if not isinstance(heads, TaskHeads):
        raise TypeError(f"model.{head} is not a TaskHeads")
    setattr(model, head, heads.mean_head())


def last_layer_ml(
    model: nn.Module,
    tasks: TaskSet,
    loss_fn: LossFn,
    *,
    steps: int,
    head: str = HEAD,
    lr: float = 1e-3,
    weight_decay: float = WEIGHT_DECAY,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> RetrainResult:
    """Last-layer meta-learning: a shared body with one head per task, trained jointly.

    The T heads start as copies of ``model.<head>`` (see :class:`TaskHeads`). Afterwards the
    model's head is the mean of the task heads (:func:`merge_task_heads`).
    """
    if not isinstance(getattr(model, head), nn.Linear):
        raise TypeError(f"model.{head} must be an nn.Linear, got "
                        f"{type(getattr(model, head)).__name__}")
    attach_task_heads(model, tasks.num_tasks, head)
    history = _joint_training(
        model, tasks, loss_fn, lambda t: select_task(model, t), steps=steps, lr=lr,
        weight_decay=weight_decay, batch_size=batch_size, seed=seed, desc="last-layer ML",
        progress=progress,
    )
    merge_task_heads(model, head)
    return RetrainResult("last_layer_ml", model, history)


def reptile(
    model: nn.Module,
    tasks: TaskSet,
    loss_fn: LossFn,
    *,
    meta_steps: int,
    inner_steps: int = 5,
    inner_lr: float = 1e-3,
    meta_lr: float = 0.5,
    weight_decay: float = WEIGHT_DECAY,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> RetrainResult:
    """Reptile (Nichol et al., 2018), batched over all tasks each meta-step.

    Each meta-step copies theta, runs ``inner_steps`` AdamW steps (lr ``inner_lr``) on each
    task t to get phi_t, then sets theta <- theta + meta_lr * (1/T) sum_t (phi_t - theta).
    The inner optimiser restarts every meta-step, as in the paper's description of Reptile.
    """
    meta_steps = _check_steps(meta_steps, "meta_steps")
    _check_steps(inner_steps, "inner_steps")
    worker = copy.deepcopy(model)
    worker.train()
    generator = torch.Generator().manual_seed(int(seed))
    history = np.empty(meta_steps)
    for step in _progress(meta_steps, "Reptile", progress):
        theta = {k: v.detach().clone() for k, v in model.state_dict().items()}
        moved = {k: torch.zeros_like(v) for k, v in theta.items() if v.is_floating_point()}
        first_losses = []
        for t in range(tasks.num_tasks):
            worker.load_state_dict(theta)
            opt = torch.optim.AdamW(worker.parameters(), lr=inner_lr, weight_decay=weight_decay)
            for i in range(inner_steps):
                opt.zero_grad(set_to_none=True)
                loss = task_loss(worker, loss_fn, tasks.batch(t, batch_size, generator))
                loss.backward()
                opt.step()
                if i == 0:
                    first_losses.append(float(loss.detach()))
            for k, v in worker.state_dict().items():
                if k in moved:
                    moved[k] += (v.detach() - theta[k]) / tasks.num_tasks
        with torch.no_grad():
            model.load_state_dict({k: theta[k] + meta_lr * moved[k] if k in moved else theta[k]
                                   for k in theta})
        history[step] = float(np.mean(first_losses))
    return RetrainResult("reptile", model, history)


# ---------------------------------------------------------------------- MAML (torch.func)
def _adapted(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    loss_fn: LossFn,
    support: Batch,
    inner_lr: float,
    inner_steps: int,
    first_order: bool,
) -> dict[str, torch.Tensor]:
    # theta' = theta - a grad L^support(theta), repeated; differentiable unless first_order.
    def support_loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return loss_fn(functional_call(model, (p, buffers), support[:-1]), support[-1])

    for _ in range(inner_steps):
        g = grad(support_loss)(params)
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        params = {k: params[k] - inner_lr * g[k] for k in params}
    return params


def maml_meta_gradient(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    support: Sequence[Batch],
    query: Sequence[Batch],
    loss_fn: LossFn,
    *,
    inner_lr: float,
    inner_steps: int = 1,
    first_order: bool = False,
    vectorize: bool = True,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Meta-gradient of MAML's objective, averaged over tasks.

    Computes grad_theta (1/T) sum_t L_t^query(theta'_t), theta'_t = theta - a grad L_t^support
    (``inner_steps`` times). Second order differentiates through the inner gradient, i.e. the
    meta-gradient of one step is (I - a H_t^support) grad L_t^query(theta'_t); first order
    (FOMAML) treats the inner gradient as a constant: grad L_t^query(theta'_t).

    Parameters
    ----------
    model : nn.Module
        Defines the function; its own parameters are not used (``params`` are).
    params : dict of str to Tensor
        theta, keyed as ``model.named_parameters()``.
    support, query : sequence of batches
        One ``(inputs..., target)`` batch per task.
    loss_fn : callable
    inner_lr : float
        a, the inner step size.
    inner_steps : int, default 1
    first_order : bool, default False
    vectorize : bool, default True
        Use ``vmap`` over tasks when every task's batches have equal shapes (else a loop).

    Returns
    -------
    grads : dict of str to Tensor
        The meta-gradient, shaped like ``params``.
    loss : Tensor
        The meta-objective (1/T) sum_t L_t^query(theta'_t), detached.
    """
    if len(support) != len(query) or not support:
        raise ValueError("support and query need one batch per task, and at least one task")
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def outer(p: dict[str, torch.Tensor], s: Batch, q: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        adapted = _adapted(model, p, buffers, loss_fn, s, inner_lr, inner_steps, first_order)
        loss = loss_fn(functional_call(model, (adapted, buffers), q[:-1]), q[-1])
        return loss, loss.detach()

    meta_grad = grad(outer, has_aux=True)
    same_shapes = all(
        [x.shape for x in s] == [x.shape for x in support[0]]
        and [x.shape for x in q] == [x.shape for x in query[0]]
        for s, q in zip(support, query, strict=True)
    )
    if vectorize and same_shapes:
        stacked_s = tuple(torch.stack(xs) for xs in zip(*support, strict=True))
        stacked_q = tuple(torch.stack(xs) for xs in zip(*query, strict=True))
        grads, losses = vmap(meta_grad, in_dims=(None, 0, 0))(params, stacked_s, stacked_q)
        return {k: g.mean(dim=0) for k, g in grads.items()}, losses.mean()
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    losses = []
    for s, q in zip(support, query, strict=True):
        g, loss = meta_grad(params, s, q)
        for k in total:
            total[k] += g[k] / len(support)
        losses.append(loss)
    return total, torch.stack(losses).mean()


def _support_query(
    tasks: TaskSet, t: int, batch_size: int | None, generator: torch.Generator
) -> tuple[Batch, Batch]:
    # A fresh random half/half split of the task's mini-batch (or of the whole task).
    n = tasks.size(t) if batch_size is None else min(2 * batch_size, tasks.size(t))
    if n < 2:
        raise ValueError(f"task {t} needs at least 2 samples for a support/query split")
    batch = tasks.batch(t, n, generator)
    index = torch.randperm(n, generator=generator).to(batch[0].device)
    half = n // 2
    return (tuple(x[index[:half]] for x in batch), tuple(x[index[half:2 * half]] for x in batch))


def maml(
    model: nn.Module,
    tasks: TaskSet,
    loss_fn: LossFn,
    *,
    meta_steps: int,
    inner_lr: float = 1e-2,
    inner_steps: int = 1,
    meta_lr: float = 1e-3,
    first_order: bool = False,
    batch_size: int | None = None,
    vectorize: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> RetrainResult:
    """MAML (Finn et al., 2017) with an AdamW outer loop; see :func:`maml_meta_gradient`.

    Each meta-step splits a mini-batch of every task (size ``2 * batch_size``, or the whole
    task) at random into support and query halves.
    """
    meta_steps = _check_steps(meta_steps, "meta_steps")
    _check_steps(inner_steps, "inner_steps")
    named = dict(model.named_parameters())
    opt = torch.optim.AdamW(named.values(), lr=meta_lr, weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(int(seed))
    history = np.empty(meta_steps)
    model.train()
    for step in _progress(meta_steps, "MAML", progress):
        pairs = [_support_query(tasks, t, batch_size, generator) for t in range(tasks.num_tasks)]
        params = {k: v.detach() for k, v in named.items()}
        grads, loss = maml_meta_gradient(
            model, params, [p[0] for p in pairs], [p[1] for p in pairs], loss_fn,
            inner_lr=inner_lr, inner_steps=inner_steps, first_order=first_order,
            vectorize=vectorize,
        )
        for k, p in named.items():
            p.grad = grads[k]
        opt.step()
        opt.zero_grad(set_to_none=True)
        history[step] = float(loss)
    name = "fomaml" if first_order else "maml"
    return RetrainResult(name, model, history)


#: Retraining methods :func:`retrain` dispatches.
RETRAIN_METHODS = ("sr", "lora_ml", "last_layer_ml", "reptile", "maml", "fomaml")


def retrain(
    method: str,
    model: nn.Module,
    tasks: TaskSet,
    loss_fn: LossFn,
    *,
    steps: int,
    lr: float,
    rank: int,
    alpha: float | None,
    symmetric: bool,
    target_modules: Sequence[str] | None,
    batch_size: int | None,
    inner_steps: int,
    inner_lr: float,
    meta_lr: float,
    seed: int,
    progress: bool = False,
) -> RetrainResult:
    """Dispatch ``method`` with a common budget of ``steps`` gradient evaluations per task.

    Reptile and MAML spend ``inner_steps`` (Reptile) or 2 (MAML: inner plus outer) gradient
    evaluations per task per meta-step, so their meta-step count is the budget divided by that.

    Raises
    ------
    ValueError
        If ``method`` is not one of :data:`RETRAIN_METHODS`.
    """
    common = {"batch_size": batch_size, "seed": seed, "progress": progress}
    if method == "sr":
        return standard_retraining(model, tasks, loss_fn, steps=steps, lr=lr, **common)
    if method == "lora_ml":
        return lora_ml(
            model, tasks, loss_fn, rank=rank, alpha=alpha, symmetric=symmetric,
            target_modules=target_modules, steps=steps, lr=lr, **common,
        )
    if method == "last_layer_ml":
        return last_layer_ml(model, tasks, loss_fn, steps=steps, lr=lr, **common)
    if method == "reptile":
        return reptile(
            model, tasks, loss_fn, meta_steps=max(steps // inner_steps, 1),
            inner_steps=inner_steps, inner_lr=inner_lr, meta_lr=meta_lr, **common,
        )
    if method in ("maml", "fomaml"):
        return maml(
            model, tasks, loss_fn, meta_steps=max(steps // 2, 1), inner_lr=inner_lr,
            meta_lr=lr, first_order=method == "fomaml", **common,
        )
    raise ValueError(f"method must be one of {RETRAIN_METHODS}, got {method!r}")
