"""Torch backend: LoRA-ML and its baselines on neural networks (THEORY.md section 6).

This subpackage is the only part of ``lowrank_theory`` that imports torch, and it does so
lazily: ``import lowrank_theory.neural`` (and the command line that registers the ``neural``
subcommand) works without torch; the first attribute that needs torch imports it, so a missing
torch surfaces as one clear ``ImportError`` that says how to install the extra.

Modules
-------
adapters
    :class:`LoRABank`, T per-task low-rank adapters around one ``nn.Linear``, and the helpers
    that attach, select, reset, merge and export them (Hugging Face peft naming).
models
    The paper's networks: the shallow network ``c^T sigmoid((A + U U^T) x)``, a depth-1
    MLP-Mixer and a RoBERTa next-utterance scorer.

Methods
-------
    Retraining: standard retraining (SR), LoRA-ML, last-layer meta-learning, Reptile and MAML
    (first and second order, with ``torch.func``).
finetune
    Fine-tuning a fresh adapter or head on an unseen task, and summaries over seeds.
data
    Task sets: the shallow-network teacher, digit / CIFAR-10 class pairs, persona-chat groups.
language
    ConvAI2 persona groups (or synthetic persona dialogues) and the RoBERTa scorer's loaders.
experiments
    Configs with ``cpu`` and ``paper`` sizes and the functions from config and seed to rows.
cli
    The ``lowrank-theory neural`` subcommand (imports torch only when it runs).
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
    "run_experiment": "experiments",
}

_INSTALL_HINT = "the torch backend needs torch: install it with  pip install -e .[torch]"

__all__ = sorted(_LAZY)


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
    return sorted(set(globals()) | set(_LAZY))
