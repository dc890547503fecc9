"""What the neural run functions share: derived seeds, losses, the device and thread set-up."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "DATA",
    "MODEL",
    "TRAIN",
    "FINETUNE",
    "SPLIT",
    "sub_seed",
    "compute_context",
    "provenance",
    "mse",
    "bce",
    "binary_accuracy",
]

#: Purposes of the derived seeds (fixed numbers, so a result does not depend on call order).
DATA, MODEL, TRAIN, FINETUNE, SPLIT = 1, 2, 3, 4, 5


def sub_seed(seed: int, *keys: int) -> int:
    """Independent 32-bit seed for one purpose (``keys``) of a run seeded by ``seed``.

    Examples
    --------
    >>> sub_seed(0, DATA) == sub_seed(0, DATA) != sub_seed(0, MODEL)
    True
    """
    return int(np.random.SeedSequence([int(seed), *keys]).generate_state(1)[0])


@contextlib.contextmanager
def compute_context(device: str, threads: int | None) -> Iterator[Any]:
    """Check ``device`` and, on CPU, set torch's thread count for the block; yield the device.

    ``threads`` None uses every CPU this process may run on
    (:func:`lowrank_theory.neural.runtime.cpu_threads`); the previous count is restored.
    """
    from lowrank_theory.neural.runtime import check_device, cpu_threads

    dev = check_device(device)
    with cpu_threads(threads) if dev.type == "cpu" else contextlib.nullcontext():
        yield dev


def provenance(device: Any) -> dict[str, str]:
    """Columns naming the torch version and the device a row was computed with."""
    import torch

    return {"torch_version": torch.__version__, "device": str(device)}


def mse(out, y):
    """Mean squared error."""
    from torch.nn import functional as F

    return F.mse_loss(out, y)


def bce(out, y):
    """Logistic loss of one logit per sample against labels in {0, 1}."""
    from torch.nn import functional as F

    return F.binary_cross_entropy_with_logits(out, y)


def binary_accuracy(out, y):
    """Fraction of samples whose logit has the sign of its label (label 1: positive)."""
    import torch

    return ((out > 0).to(y.dtype) == y).to(torch.float32).mean()
