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
from .methods import WEIGHT_DECAY
from .models import ShallowNet, seeded
from .runtime import GRAPH_CHUNK, run_steps

__all__ = [
    "WEIGHT_DECAY",
    "ShallowStack",
    "init_stack",
    "adapter_start",
    "StackGradients",
    "StackTrainResult",
    "train_stack",
    "stack_errors",
]

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


class StackGradients:
    """Per-model losses and the gradients of their sum, into buffers allocated once.

    The forward and backward passes of the loss of :class:`ShallowStack` written out, every
    intermediate in a preallocated buffer (``out=`` and in-place operations). A training loop
    then allocates nothing per step: on CPU that saves the page faults of freeing and
    re-allocating megabyte-sized temporaries every step, and on CUDA every step touches the
    same memory, as graph capture requires.

    Parameters
    ----------
    stack : ShallowStack
        Fixes the shapes (M, T, r, d) and the device; its values are read at each call.
    X : Tensor of shape (M, T, n, d)
    y : Tensor of shape (M, T, n)
    train_base : bool
        Also compute the gradients of A and c (retraining), or only the adapters' (fine-tuning).

    Notes
    -----
    With W_t = A + B_t diag(m) V_t, H = sigmoid(X W_t^T), f = H c, residual R = f - y and
    L = sum_m (1/(T n)) sum_t ||R_mt||^2, G = dL/df = 2 R / (T n) and

        dL/dc = sum_t H^T G,    dL/dW_t = (H * (1 - H) * (G c^T))^T X,
        dL/dA = sum_t dL/dW_t,  dL/dB_t = dL/dW_t V_t^T diag(m),  dL/dV_t = diag(m) B_t^T dL/dW_t.
    """

    def __init__(self, stack: ShallowStack, X: torch.Tensor, y: torch.Tensor,
                 train_base: bool) -> None:
        M, T, n, d = X.shape
        r = stack.lora_A.shape[2]
        like = {"device": X.device, "dtype": X.dtype}
        self.X, self.y, self.train_base = X, y, train_base
        self.scale = 1.0 / (T * n)
        self.masked_B = torch.empty(M, T, d, r, **like)
        self.W = torch.empty(M, T, d, d, **like)
        self.H = torch.empty(M, T, n, d, **like)
        self.H2 = torch.empty(M, T, n, d, **like)
        self.out = torch.empty(M, T, n, 1, **like)
        self.squares = torch.empty(M, T, n, **like)
        self.losses = torch.empty(M, **like)
        self.dW = torch.empty(M, T, d, d, **like)
        self.dc = torch.empty(M, T, d, 1, **like)
        self.grads = {name: torch.empty_like(getattr(stack, name), **like)
                      for name in ("weight", "head", "lora_A", "lora_B")}

    @torch.no_grad()
    def __call__(self, s: ShallowStack) -> torch.Tensor:
        """Fill :attr:`grads` for the stack's current values; return the losses, shape (M,)."""
        mask = s.mask[:, None, None, :]
        torch.mul(s.lora_B, mask, out=self.masked_B)
        torch.matmul(self.masked_B, s.lora_A, out=self.W)
        self.W.add_(s.weight[:, None])
        torch.matmul(self.X, self.W.transpose(-1, -2), out=self.H)
        torch.sigmoid(self.H, out=self.H)
        torch.matmul(self.H, s.head[:, None, :, None], out=self.out)
        residual = self.out.squeeze(-1)
        residual.sub_(self.y)
        torch.mul(residual, residual, out=self.squares)
        torch.sum(self.squares, dim=(1, 2), out=self.losses)
        self.losses.mul_(self.scale)
        residual.mul_(2.0 * self.scale)  # now G = dL/df
        if self.train_base:
            torch.matmul(self.H.transpose(-1, -2), self.out, out=self.dc)
            torch.sum(self.dc.squeeze(-1), dim=1, out=self.grads["head"])
        torch.mul(self.H, self.H, out=self.H2)
        self.H.sub_(self.H2)  # sigmoid' = H (1 - H)
        self.H.mul_(s.head[:, None, None, :])
        self.H.mul_(self.out)  # dL/d(pre-activation)
        torch.matmul(self.H.transpose(-1, -2), self.X, out=self.dW)
        if self.train_base:
            torch.sum(self.dW, dim=1, out=self.grads["weight"])
        torch.matmul(self.dW, s.lora_A.transpose(-1, -2), out=self.grads["lora_B"])
        self.grads["lora_B"].mul_(mask)
        torch.matmul(self.masked_B.transpose(-1, -2), self.dW, out=self.grads["lora_A"])
        return self.losses


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
    The objective is sum_m L(model m) (see the module notes). Its gradients come from
    :class:`StackGradients` (no autograd, no allocation per step) and go to
    ``torch.optim.AdamW`` (``capturable`` on CUDA, so its step counter lives on the device and
    the whole step can be captured in a graph).
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
    names = ["weight", "head"] if train_base else []
    names += ["lora_A", "lora_B"]
    gradients = StackGradients(live, X, y, train_base)
    params = [getattr(live, name) for name in names]
    for name, p in zip(names, params, strict=True):
        p.grad = gradients.grads[name]  # the optimiser reads the buffers the passes fill
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay,
                            capturable=device.type == "cuda", foreach=True)
    chunk = max(1, min(int(chunk), int(steps)))
    record = torch.zeros(chunk, M, device=device)
    history = torch.empty(int(steps), M, device=device)
    done = [0]

    def step(j: int) -> None:
        losses = gradients(live)
        opt.step()
        record[j].copy_(losses)

    from tqdm.auto import tqdm

    with tqdm(total=int(steps), desc=desc, disable=not progress, leave=False) as bar:

        def collect(n: int) -> None:
            history[done[0]:done[0] + n].copy_(record[:n])
            done[0] += n
            bar.update(n)

        mode = run_steps(step, int(steps), device, graph=graph, chunk=chunk, on_chunk=collect)
    for p in params:
        p.grad = None
    return StackTrainResult(live, history.cpu().numpy(), mode)


@torch.no_grad()
def stack_errors(stack: ShallowStack, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-model mean squared error of task-0 predictions: ``X`` (M, n, d), ``y`` (M, n).

    Used on the unseen task after fine-tuning (one adapter per model); returns shape (M,).
    """
    return stack.losses(X[:, None], y[:, None]).cpu().numpy()
