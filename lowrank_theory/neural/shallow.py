"""Many shallow networks trained as one batched computation (seeds, methods and ranks at once).

The shallow network of the paper's nonlinear experiment, with per-task asymmetric adapters on
its hidden layer, is

    f_t(x) = c^T sigmoid(W_t x),    W_t = A + B_t diag(m) V_t,

with A (d, d) the base, c (d,) the output weights, B_t (d, r) and V_t (r, d) the adapter of
task t (peft's ``lora_B`` and ``lora_A``) and m in {0, 1}^r a fixed rank mask. A
:class:`ShallowStack` holds M such networks with a leading model axis, so one ``matmul`` serves
every model, task and sample. The mask lets models of different kinds share that computation
exactly:

- standard retraining (SR) is m = 0: W_t = A + 0 for every t, and the adapters get zero
  gradients, hence zero AdamW updates (their decay is multiplied by 0 in the forward pass);
- a rank-k adapter padded to rank 3k is m = (1, ..., 1, 0, ...): the padded components add
  exact zeros, so the rank-k model computes what an unpadded one computes.

Training minimises the SUM over models of each model's loss
L(model) = (1/T) sum_t (1/N) sum_i (f_t(x_ti) - y_ti)^2, so each parameter's gradient is its own
model's gradient, and AdamW, being elementwise, makes exactly the per-model updates: M models
trained in one stack follow the same iterates (to round-off) as M models trained one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .adapters import banks, reset_adapters
from .models import ShallowNet, seeded
from .runtime import GRAPH_CHUNK, run_steps

#: AdamW's default weight decay (``torch.optim.AdamW``), used by the authors' scripts.
WEIGHT_DECAY = 0.01


@dataclass
class ShallowStack:
    """M shallow networks with T per-task adapters of rank r, stored along a model axis.

    Attributes
    ----------
    weight : Tensor of shape (M, d, d)
        The base A of each model.
    head : Tensor of shape (M, d)
        The output weights c.
    lora_A : Tensor of shape (M, T, r, d)
        V_t, peft's ``lora_A`` of each task.
    lora_B : Tensor of shape (M, T, d, r)
        B_t, peft's ``lora_B`` of each task.
    mask : Tensor of shape (M, r)
        1 where a rank component is in use, 0 where it is not (all 0: SR).
    """

    weight: torch.Tensor
    head: torch.Tensor
    lora_A: torch.Tensor
    lora_B: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        M, d = self.weight.shape[0], self.weight.shape[-1]
        T, r = self.lora_A.shape[1], self.lora_A.shape[2]
        shapes = {"weight": (M, d, d), "head": (M, d), "lora_A": (M, T, r, d),
                  "lora_B": (M, T, d, r), "mask": (M, r)}
        for name, shape in shapes.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got "
                                 f"{tuple(getattr(self, name).shape)}")

    @property
    def num_models(self) -> int:
        """M."""
        return int(self.weight.shape[0])

    @property
    def num_tasks(self) -> int:
        """T."""
        return int(self.lora_A.shape[1])

    def to(self, device: str | torch.device) -> ShallowStack:
        """Return a copy with every tensor on ``device``."""
        return ShallowStack(*(x.detach().to(device).clone() for x in self._tensors()))

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.weight, self.head, self.lora_A, self.lora_B, self.mask)

    def task_weights(self) -> torch.Tensor:
        """W_t = A + B_t diag(m) V_t of every model and task, shape (M, T, d, d)."""
        delta = (self.lora_B * self.mask[:, None, None, :]) @ self.lora_A
        return self.weight[:, None] + delta

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Outputs c^T sigmoid(W_t x) of shape (M, T, n) for inputs ``X`` of shape (M, T, n, d)."""
        hidden = torch.sigmoid(X @ self.task_weights().transpose(-1, -2))
        return (hidden @ self.head[:, None, :, None]).squeeze(-1)

    def losses(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-model loss (1/T) sum_t mean_i (f_t(x_ti) - y_ti)^2, shape (M,).

        ``X`` (M, T, n, d), ``y`` (M, T, n).
        """
        return ((self.forward(X) - y) ** 2).mean(dim=(1, 2))


def init_stack(
    d: int,
    num_tasks: int,
    rank: int,
    model_seeds: list[int],
    adapter_seeds: list[int],
    masks: torch.Tensor,
) -> ShallowStack:
    """Initial stack whose model i starts where the one-model code path starts.

    Model i's base and head are those of ``ShallowNet(d)`` built under ``seeded(model_seeds[i])``
    and its adapters those that :func:`~lowrank_theory.neural.adapters.reset_adapters` draws from
    ``adapter_seeds[i]`` (peft's start: V Kaiming-uniform, B = 0), so a batched run and an
    unbatched run from the same seeds share their starting point.

    Parameters
    ----------
    d : int
        Input dimension.
    num_tasks, rank : int
        T and r of the adapters.
    model_seeds, adapter_seeds : list of int
        One of each per model.
    masks : Tensor of shape (M, r)
        Rank masks (see :class:`ShallowStack`).

    Returns
    -------
    ShallowStack
        On the CPU, float32.
    """
    if len(model_seeds) != len(adapter_seeds) or len(model_seeds) != masks.shape[0]:
        raise ValueError("model_seeds, adapter_seeds and masks must describe the same models")
    weights, heads, As, Bs = [], [], [], []
    for model_seed, adapter_seed in zip(model_seeds, adapter_seeds, strict=True):
        with seeded(model_seed):
            net = ShallowNet(d)
        weights.append(net.hidden.weight.detach().clone())
        heads.append(net.head.weight.detach()[0].clone())
        As.append(adapter_start(d, num_tasks, rank, adapter_seed)[0])
        Bs.append(torch.zeros(num_tasks, d, rank))
    return ShallowStack(torch.stack(weights), torch.stack(heads), torch.stack(As),
                        torch.stack(Bs), masks.to(torch.float32).clone())


def adapter_start(d: int, num_tasks: int, rank: int, seed: int) -> tuple[torch.Tensor, ...]:
    """The fresh adapters (lora_A (T, r, d), lora_B (T, d, r)) the one-model path draws.

    :func:`~lowrank_theory.neural.adapters.reset_adapters` with ``seed`` on a d x d layer named
    ``hidden`` (the shallow network's only adapted layer), so a stacked model and a
    ``ShallowNet`` given adapters by ``attach_adapters(..., seed=seed)`` start alike.
    """
    from torch import nn

    from .adapters import LoRABank

    holder = nn.Module()
    with seeded(0):  # the throw-away layer's own init must not touch the global generator
        holder.hidden = LoRABank(nn.Linear(d, d, bias=False), 1, 1)
    reset_adapters(holder, num_tasks, rank, seed=seed)
    bank = dict(banks(holder))["hidden"]
    return bank.lora_A.detach().clone(), bank.lora_B.detach().clone()


@dataclass(frozen=True)
class StackTrainResult:
    """Outcome of :func:`train_stack`.

    Attributes
    ----------
    stack : ShallowStack
        The trained networks (on the training device, detached).
    history : ndarray of shape (steps, M)
        Each model's training loss at every step, evaluated before that step's update.
    mode : str
        ``"cuda-graph"`` or ``"eager"``.
    """

    stack: ShallowStack
    history: np.ndarray
    mode: str


def train_stack(
    stack: ShallowStack,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    weight_decay: float = WEIGHT_DECAY,
    train_base: bool = True,
    graph: bool = True,
    chunk: int = GRAPH_CHUNK,
    progress: bool = False,
    desc: str = "shallow",
) -> StackTrainResult:
    """Full-batch AdamW on every model of ``stack`` at once.

    Parameters
    ----------
    stack : ShallowStack
        The start (not modified; a copy is trained on ``X``'s device).
    X : Tensor of shape (M, T, n, d)
        Each model's inputs for each task.
    y : Tensor of shape (M, T, n)
        Targets.
    steps : int
        Optimiser steps (>= 1).
    lr, weight_decay : float
        AdamW's.
    train_base : bool, default True
        Train A and c with the adapters (retraining); False trains the adapters only
        (fine-tuning: the base is frozen).
    graph : bool, default True
        On CUDA, replay chunks of steps as CUDA graphs (see
        :func:`~lowrank_theory.neural.runtime.run_steps`).
    chunk : int
        Steps per graph.
    progress : bool
        Show a tqdm bar.
    desc : str
        The bar's label.

    Returns
    -------
    StackTrainResult

    Notes
    -----
    The objective is sum_m L(model m) (see the module notes). Gradients come from
    ``torch.autograd.grad`` and are handed to ``torch.optim.AdamW`` (``capturable`` on CUDA so
    its step counter lives on the device and the whole step can be captured).
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    M, T = stack.num_models, stack.num_tasks
    if X.ndim != 4 or tuple(X.shape[:2]) != (M, T) or X.shape[-1] != stack.weight.shape[-1]:
        raise ValueError(f"X must have shape (M={M}, T={T}, n, d={stack.weight.shape[-1]}), "
                         f"got {tuple(X.shape)}")
    if tuple(y.shape) != tuple(X.shape[:3]):
        raise ValueError(f"y must have shape {tuple(X.shape[:3])}, got {tuple(y.shape)}")
    device = X.device
    live = stack.to(device)
    params = [live.weight, live.head] if train_base else []
    params += [live.lora_A, live.lora_B]
    for p in params:
        p.requires_grad_(True)
    cuda = device.type == "cuda"
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, capturable=cuda,
                            foreach=True)
    chunk = max(1, min(int(chunk), int(steps)))
    record = torch.zeros(chunk, M, device=device)
    history = torch.empty(int(steps), M, device=device)
    done = [0]

    def step(j: int) -> None:
        losses = live.losses(X, y)
        grads = torch.autograd.grad(losses.sum(), params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        record[j].copy_(losses.detach())

    from tqdm.auto import tqdm

    with tqdm(total=int(steps), desc=desc, disable=not progress, leave=False) as bar:

        def collect(n: int) -> None:
            history[done[0]:done[0] + n].copy_(record[:n])
            done[0] += n
            bar.update(n)

        mode = run_steps(step, int(steps), device, graph=graph, chunk=chunk, on_chunk=collect)
    for p in params:
        p.requires_grad_(False)
        p.grad = None
    return StackTrainResult(live, history.cpu().numpy(), mode)


@torch.no_grad()
def stack_errors(stack: ShallowStack, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-model mean squared error of task-0 predictions: ``X`` (M, n, d), ``y`` (M, n).

    Used on the unseen task after fine-tuning (one adapter per model); returns shape (M,).
    """
    return stack.losses(X[:, None], y[:, None]).cpu().numpy()
