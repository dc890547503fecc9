"""lowrank-theory: verify, simulate and extend the theory of meta-learning with LoRA.

The linear model of "Provable Meta-Learning with Low-Rank Adaptations" (Block et al., 2025):
task families and samples (:mod:`~lowrank_theory.tasks`), losses through sufficient statistics
(:mod:`~lowrank_theory.losses`), standard retraining (:mod:`~lowrank_theory.retraining`), LoRA-ML
(:mod:`~lowrank_theory.lora_ml`), fine-tuning (:mod:`~lowrank_theory.adaptation`), metrics
(:mod:`~lowrank_theory.metrics`) and the adaptation schemes (:class:`AdaptationScheme` and its
implementations, :mod:`~lowrank_theory.schemes`). The theorem checks
(:mod:`~lowrank_theory.theorems`, which sit above all of these) load on first use of
``lowrank_theory.theorems``; the torch backend lives in :mod:`lowrank_theory.neural` and is
imported only on request.

Examples
--------
>>> import lowrank_theory as lt
>>> fam = lt.TaskFamily.random(d=6, k=1, T=3, seed=0)
>>> fit = lt.fit_lora_ml(fam, k=1, seed=0)
>>> bool(lt.metrics.base_error(fit.A, fam.A_star, relative=True) < 1e-6)
True
>>> lt.theorems.run_checks(seed=0, only=["sr-rank"])[0].holds
True
"""

import importlib as _importlib
from typing import Any as _Any

from lowrank_theory import metrics
from lowrank_theory.adaptation import FineTuneResult, fine_tune
from lowrank_theory.adapters import Adapter, AsymmetricAdapter, SymmetricAdapter
from lowrank_theory.lora_ml import LoRAMLResult, fit_lora_ml, lora_ml_gradient, lora_ml_objective
from lowrank_theory.retraining import standard_retraining
from lowrank_theory.schemes import (
    AdaptationScheme,
    AdaptiveRankLoRA,
    FixedRankLoRA,
    FullFineTune,
    MixtureOfAdapters,
    PostPerturbation,
    SchemeResult,
    SubspaceInit,
    WeightInterpolation,
)
from lowrank_theory.tasks import TaskData, TaskFamily


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lowrank-theory")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


__version__ = _package_version()

#: The one name resolved on first access (PEP 562): the theorem checks import every layer of
#: the mathematics (the landscape, the solvers, the schemes) and are not needed to fit or
#: fine-tune, so ``import lowrank_theory`` does not pay for them.
_LAZY_MODULES = ("theorems",)

__all__ = [
    "TaskFamily",
    "TaskData",
    "Adapter",
    "SymmetricAdapter",
    "AsymmetricAdapter",
    "standard_retraining",
    "fit_lora_ml",
    "lora_ml_objective",
    "lora_ml_gradient",
    "LoRAMLResult",
    "fine_tune",
    "FineTuneResult",
    "AdaptationScheme",
    "SchemeResult",
    "FixedRankLoRA",
    "FullFineTune",
    "AdaptiveRankLoRA",
    "MixtureOfAdapters",
    "SubspaceInit",
    "WeightInterpolation",
    "PostPerturbation",
    "metrics",
    "schemes",
    "theorems",
    "__version__",
]


def __getattr__(name: str) -> _Any:
    if name in _LAZY_MODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
