"""Per-task low-rank adapter banks for ``nn.Linear`` (the torch form of the theory's A + U_t U_t^T).

A :class:`LoRABank` holds the trainable base ``W`` (and bias ``b``) of one linear layer and T
adapters of rank r. With task t active the layer computes

    y = x W^T + b + s * x Delta_t^T,
    Delta_t = B_t A_t   (asymmetric, peft naming: A_t (r, in) random, B_t (out, r) zero)
    Delta_t = U_t U_t^T (symmetric, square layers only: the theory's PSD offset),

with the scaling s = alpha / r of Hugging Face peft. ``active_task = None`` runs the base alone.
The helpers below attach banks to every targeted linear layer of a model, select a task,
replace the retraining adapters by fresh ones for fine-tuning, merge/unmerge, strip the banks
again, and export one task's adapter as a peft state dict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "SYMMETRIC_INIT_STD",
    "PEFT_PREFIX",
    "LoRABank",
    "banks",
    "attach_adapters",
    "reset_adapters",
    "remove_adapters",
    "set_task",
    "adapter_parameters",
    "base_parameters",
    "export_peft_state_dict",
    "peft_config",
]

#: Standard deviation of the symmetric factor's random start. U = 0 is a stationary point of
#: every symmetric objective (grad_U F = 2 (R + R^T) U vanishes at U = 0), so it must start away from zero; 0.1 is the
#: paper's U_0 ~ N(0, 0.1^2).
SYMMETRIC_INIT_STD = 0.1

#: Prefix peft gives the wrapped model's parameters in ``get_peft_model_state_dict``.
PEFT_PREFIX = "base_model.model."


class LoRABank(nn.Module):
    """A linear layer with a trainable base and T per-task rank-r adapters.

    Parameters
    ----------
    linear : nn.Linear
        The layer to wrap; its weight (and bias, if any) become the bank's base, shared by
        every task (the tensors are reused, not copied).
    num_tasks : int
        T, the number of adapters (>= 1).
    rank : int
        r >= 1, the adapter rank.
    alpha : float, optional
        peft's ``lora_alpha``; the update is scaled by ``alpha / r``. Defaults to ``r``
        (scaling 1, the theory's ``A + U U^T``).
    symmetric : bool, default False
        ``True``: Delta_t = U_t U_t^T (square layers only). ``False``: Delta_t = B_t A_t.
    generator : torch.Generator, optional
        Source of the adapters' random start (see :meth:`reset`).

    Attributes
    ----------
    weight : Parameter of shape (out, in)
    bias : Parameter of shape (out,) or None
    lora_A : Parameter of shape (T, r, in)
        Asymmetric only; peft's ``lora_A.weight`` of each task.
    lora_B : Parameter of shape (T, out, r)
        Asymmetric only; peft's ``lora_B.weight`` of each task.
    lora_U : Parameter of shape (T, d, r)
        Symmetric only.
    active_task : int or None
        The task whose adapter the forward pass adds (None: base only).
    merged_task : int or None
        The task whose update is currently folded into ``weight`` (see :meth:`merge`).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> bank = LoRABank(nn.Linear(4, 3), num_tasks=2, rank=1, alpha=2.0)
    >>> tuple(bank.lora_A.shape), tuple(bank.lora_B.shape), bank.scaling
    ((2, 1, 4), (2, 3, 1), 2.0)
    >>> x = torch.randn(5, 4)
    >>> bank.active_task = 1
    >>> torch.equal(bank(x), nn.functional.linear(x, bank.weight, bank.bias))  # B = 0
    True
    """

    def __init__(
        self,
        linear: nn.Linear,
        num_tasks: int,
        rank: int,
        alpha: float | None = None,
        symmetric: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.active_task: int | None = None
        self.merged_task: int | None = None
        self.reset(num_tasks, rank, alpha=alpha, symmetric=symmetric, generator=generator)

    # ------------------------------------------------------------------ set-up
    def reset(
        self,
        num_tasks: int,
        rank: int,
        alpha: float | None = None,
        symmetric: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        """Replace every adapter by ``num_tasks`` fresh ones (the base is left untouched).

        Asymmetric adapters start as peft's: A_t Kaiming-uniform (a = sqrt(5)), B_t = 0, so a
        fresh adapter leaves the layer's output unchanged. Symmetric ones start at
        U_t ~ N(0, 0.1^2) because U = 0 is a stationary point.

        Raises
        ------
        ValueError
            If ``num_tasks < 1``, ``rank < 1``, or a symmetric adapter is asked of
            a non-square layer.
        """
        if self.merged_task is not None:
            raise ValueError("unmerge() the bank before resetting its adapters")
        if int(num_tasks) < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        # Like peft, a rank above min(in, out) is allowed (it only over-parametrises Delta_t),
        # so one rank can serve every layer, the one-logit head included.
        if int(rank) < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        if symmetric and self.in_features != self.out_features:
            raise ValueError(
                f"symmetric adapters need a square layer, got {self.out_features}x"
                f"{self.in_features}; use symmetric=False"
            )
        self.num_tasks, self.rank, self.symmetric = int(num_tasks), int(rank), bool(symmetric)
        self.alpha = float(self.rank if alpha is None else alpha)
        self.scaling = self.alpha / self.rank
        self.active_task = None
        factory = {"device": self.weight.device, "dtype": self.weight.dtype}
        for name in ("lora_A", "lora_B", "lora_U"):
            if name in self._parameters:
                del self._parameters[name]
        if self.symmetric:
            U = torch.randn(
                self.num_tasks, self.in_features, self.rank, generator=generator,
                dtype=self.weight.dtype,
            )
            self.lora_U = nn.Parameter((SYMMETRIC_INIT_STD * U).to(**factory))
        else:
            # peft draws A with kaiming_uniform_(a=sqrt(5)): bound = 1/sqrt(in).
            bound = 1.0 / math.sqrt(self.in_features)
            A = torch.rand(
                self.num_tasks, self.rank, self.in_features, generator=generator,
                dtype=self.weight.dtype,
            )
            self.lora_A = nn.Parameter(((2 * A - 1) * bound).to(**factory))
            self.lora_B = nn.Parameter(
                torch.zeros(self.num_tasks, self.out_features, self.rank, **factory)
            )

    def adapter_parameters(self) -> list[nn.Parameter]:
        """Return the adapter factors (``[lora_U]`` or ``[lora_A, lora_B]``)."""
        return [self.lora_U] if self.symmetric else [self.lora_A, self.lora_B]

    # ------------------------------------------------------------------ algebra
    def delta(self, task: int) -> torch.Tensor:
        """Return the scaled update ``s * Delta_t`` of shape (out, in)."""
        self._check_task(task)
        if self.symmetric:
            U = self.lora_U[task]
            return self.scaling * (U @ U.T)
        return self.scaling * (self.lora_B[task] @ self.lora_A[task])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer with the active task's adapter: x W^T + b + s x Delta_t^T."""
        out = F.linear(x, self.weight, self.bias)
        task = self.active_task
        if task is None or self.merged_task is not None:
            return out
        # Low-rank path: two thin products instead of forming the (out, in) update.
        if self.symmetric:
            U = self.lora_U[task]
            return out + self.scaling * ((x @ U) @ U.T)
        return out + self.scaling * ((x @ self.lora_A[task].T) @ self.lora_B[task].T)

    def merge(self, task: int) -> None:
        """Fold task t's update into the base weight (W <- W + s Delta_t) for fast inference."""
        if self.merged_task is not None:
            raise ValueError(f"task {self.merged_task} is already merged; unmerge() first")
        with torch.no_grad():
            self.weight.add_(self.delta(task))
        self.merged_task = task

    def unmerge(self) -> None:
        """Undo :meth:`merge` (W <- W - s Delta_t)."""
        if self.merged_task is None:
            raise ValueError("no task is merged")
        with torch.no_grad():
            self.weight.sub_(self.delta(self.merged_task))
        self.merged_task = None

    def to_linear(self) -> nn.Linear:
        """Return a plain ``nn.Linear`` sharing the base weight and bias (adapters dropped)."""
        if self.merged_task is not None:
            raise ValueError("unmerge() the bank before removing its adapters")
        linear = nn.Linear(
            self.in_features, self.out_features, bias=self.bias is not None,
            device=self.weight.device, dtype=self.weight.dtype,
        )
        linear.weight = self.weight
        if self.bias is not None:
            linear.bias = self.bias
        return linear

    def _check_task(self, task: int) -> None:
        if not 0 <= int(task) < self.num_tasks:
            raise ValueError(f"task must be in [0, {self.num_tasks - 1}], got {task}")

    def extra_repr(self) -> str:
        kind = "symmetric" if self.symmetric else "asymmetric"
        return (
            f"in={self.in_features}, out={self.out_features}, tasks={self.num_tasks}, "
            f"rank={self.rank}, alpha={self.alpha:g}, {kind}"
        )


# ---------------------------------------------------------------------- model-level helpers
def _matches(name: str, targets: Iterable[str] | None) -> bool:
    # peft's rule: a target matches a module whose qualified name equals it or ends in ".target".
    if targets is None:
        return True
    return any(name == t or name.endswith("." + t) for t in targets)


def banks(model: nn.Module) -> Iterator[tuple[str, LoRABank]]:
    """Yield ``(qualified name, bank)`` for every :class:`LoRABank` in ``model``, in order."""
    for name, module in model.named_modules():
        if isinstance(module, LoRABank):
            yield name, module


def _set_child(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def attach_adapters(
    model: nn.Module,
    num_tasks: int,
    rank: int,
    *,
    alpha: float | None = None,
    symmetric: bool = False,
    target_modules: Iterable[str] | None = None,
    seed: int = 0,
) -> list[str]:
    """Wrap every targeted ``nn.Linear`` of ``model`` in a :class:`LoRABank`, in place.

    Parameters
    ----------
    model : nn.Module
    num_tasks, rank, alpha, symmetric
        As in :class:`LoRABank`.
    target_modules : iterable of str, optional
        Qualified names (or name suffixes, peft's rule) of the layers to adapt; None adapts
        every linear layer. Layers that already are banks are reset instead.
    seed : int, default 0
        Seed of the adapters' random start; see :func:`reset_adapters`.

    Returns
    -------
    list of str
        The qualified names of the adapted layers.

    Raises
    ------
    ValueError
        If no layer matches ``target_modules``.
    """
    targets = None if target_modules is None else list(target_modules)
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | LoRABank) and name and _matches(name, targets)
    ]
    if not names:
        raise ValueError(f"target_modules={targets} matches no linear layer of the model")
    for name in names:
        module = model.get_submodule(name)
        if isinstance(module, nn.Linear):
            _set_child(model, name, LoRABank(module, 1, 1))
    reset_adapters(model, num_tasks, rank, alpha=alpha, symmetric=symmetric, seed=seed)
    return names


def reset_adapters(
    model: nn.Module,
    num_tasks: int,
    rank: int,
    *,
    alpha: float | None = None,
    symmetric: bool = False,
    seed: int = 0,
) -> None:
    """Give every bank of ``model`` ``num_tasks`` fresh adapters drawn from ``seed``.

    One generator visits the banks in module order, so two models with the same architecture
    (say, one retrained with SR and one with LoRA-ML) receive identical fresh adapters: the
    fine-tuning start is shared, as in the paper.
    """
    generator = torch.Generator().manual_seed(int(seed))
    found = False
    for _, bank in banks(model):
        found = True
        bank.reset(num_tasks, rank, alpha=alpha, symmetric=symmetric, generator=generator)
    if not found:
        raise ValueError("model has no LoRABank; call attach_adapters first")


def remove_adapters(model: nn.Module) -> nn.Module:
    """Replace every bank by a plain ``nn.Linear`` holding its base, in place; return model."""
    for name, bank in list(banks(model)):
        _set_child(model, name, bank.to_linear())
    return model


def set_task(model: nn.Module, task: int | None) -> None:
    """Make ``task`` (or None: no adapter) the active adapter of every bank of ``model``."""
    for _, bank in banks(model):
        if task is not None:
            bank._check_task(task)
        bank.active_task = task


def adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Return the adapter factors of every bank of ``model``."""
    return [p for _, bank in banks(model) for p in bank.adapter_parameters()]


def base_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Return every parameter of ``model`` that is not an adapter factor."""
    adapter_ids = {id(p) for p in adapter_parameters(model)}
    return [p for p in model.parameters() if id(p) not in adapter_ids]


def export_peft_state_dict(
    model: nn.Module, task: int, prefix: str = PEFT_PREFIX
) -> dict[str, torch.Tensor]:
    """Return task t's adapter as a Hugging Face peft LoRA state dict.

    The keys follow ``peft.get_peft_model_state_dict``:
    ``{prefix}{layer}.lora_A.weight`` (r, in) and ``{prefix}{layer}.lora_B.weight`` (out, r),
    so ``peft.set_peft_model_state_dict`` loads them into a peft model built around the same
    base with ``LoraConfig(r=rank, lora_alpha=alpha, target_modules=<layer names>)``
    (see :func:`peft_config`). A symmetric adapter U U^T is exported as B = U, A = U^T, which
    peft scales by the same alpha / r.

    Returns
    -------
    dict of str to Tensor
        Detached CPU copies.
    """
    out: dict[str, torch.Tensor] = {}
    for name, bank in banks(model):
        bank._check_task(task)
        if bank.symmetric:
            U = bank.lora_U[task].detach()
            A, B = U.T, U
        else:
            A, B = bank.lora_A[task].detach(), bank.lora_B[task].detach()
        out[f"{prefix}{name}.lora_A.weight"] = A.cpu().clone().contiguous()
        out[f"{prefix}{name}.lora_B.weight"] = B.cpu().clone().contiguous()
    if not out:
        raise ValueError("model has no LoRABank to export")
    return out


def peft_config(model: nn.Module):
    """Return the ``peft.LoraConfig`` matching the banks of ``model`` (needs peft).

    Raises
    ------
    ImportError
        If peft is not installed (``pip install -e .[peft]``).
    ValueError
        If the banks disagree on rank or alpha (peft's config holds one of each).
    """
    try:
        from peft import LoraConfig
    except ModuleNotFoundError as exc:
        raise ImportError("exporting to peft needs peft: pip install -e .[peft]") from exc
    found = list(banks(model))
    if not found:
        raise ValueError("model has no LoRABank")
    ranks = {b.rank for _, b in found}
    alphas = {b.alpha for _, b in found}
    if len(ranks) != 1 or len(alphas) != 1:
        raise ValueError(f"banks disagree on rank {ranks} or alpha {alphas}")
    return LoraConfig(
        r=ranks.pop(),
        lora_alpha=alphas.pop(),
        target_modules=[name for name, _ in found],
        lora_dropout=0.0,
        bias="none",
    )
