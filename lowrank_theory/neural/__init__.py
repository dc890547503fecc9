"""Torch backend: LoRA-ML and its baselines on neural networks.

This subpackage is the only part of ``lowrank_theory`` that imports torch, and it does so
lazily: ``import lowrank_theory.neural`` (and the command line that registers the ``neural``
subcommand) works without torch; the first attribute that needs torch imports it, so a missing
torch surfaces as one clear ``ImportError`` that says how to install the extra.

Modules: ``adapters`` (:class:`LoRABank`, T per-task low-rank adapters around one
``nn.Linear``, and the helpers that attach, select, reset, merge and export them, Hugging Face
peft naming); ``models`` (the shallow network ``c^T sigmoid((A + U U^T) x)``, a depth-1
MLP-Mixer, a RoBERTa next-utterance scorer); ``methods`` (standard retraining (SR), LoRA-ML,
last-layer meta-learning, Reptile and MAML with ``torch.func``, and the dispatcher
``retrain``); ``finetune`` (a fresh adapter or head on an unseen task, summaries over seeds);
``shallow`` (many shallow networks, over seeds, methods and ranks, as one batched computation);
``stacked`` (many networks of one architecture as one ``vmap``-ed computation); ``runtime``
(devices, the CPU thread count, CUDA-graph replay of fixed-shape loops); ``data`` (the
shallow-network teacher, digit and CIFAR-10 class pairs, CIFAR-10 read from its python batches
by the project's own reader); ``language`` (ConvAI2 parsing, persona groups, synthetic persona
dialogues, the RoBERTa loaders); ``cli`` (the ``lowrank-theory neural`` subcommand, which imports
torch only when it runs; the experiments themselves are sweeps in :mod:`lowrank_theory.simulations.neural`).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public names and the submodule that defines each; resolved on first access (PEP 562).
_LAZY = {
    "LoRABank": "adapters",
    "attach_adapters": "adapters",
    "reset_adapters": "adapters",
    "remove_adapters": "adapters",
    "set_task": "adapters",
    "export_peft_state_dict": "adapters",
    "TaskSet": "data",
    "standard_retraining": "methods",
    "lora_ml": "methods",
    "last_layer_ml": "methods",
    "reptile": "methods",
    "maml": "methods",
    "maml_meta_gradient": "methods",
    "fine_tune": "finetune",
    "summarise": "finetune",
    "retrain": "methods",
    "ShallowStack": "shallow",
    "train_stack": "shallow",
    "stacked_training": "stacked",
    "stacked_fine_tune": "stacked",
    "read_cifar10": "data",
}

_INSTALL_HINT = "the torch backend needs torch: install it with  pip install -e .[torch]"

__all__ = sorted(_LAZY) + ["require_torch"]


def require_torch() -> Any:
    """Import and return torch, or raise ``ImportError`` with the install command.

    Returns
    -------
    module
        The ``torch`` module.

    Raises
    ------
    ImportError
        If torch is not installed; the message names the extra to install.
    """
    try:
        return importlib.import_module("torch")
    except ModuleNotFoundError as exc:
        raise ImportError(_INSTALL_HINT) from exc


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        require_torch()
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names and the loaded submodules, not the names imported for this module's
    # own use (Any, importlib).
    own = {n for n, v in globals().items()
           if n.startswith("_") or getattr(v, "__name__", "").startswith(f"{__name__}.")}
    return sorted(own | set(__all__))
