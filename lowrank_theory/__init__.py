"""lowrank-theory: verify, simulate and extend the theory of meta-learning with LoRA.

The linear model of "Provable Meta-Learning with Low-Rank Adaptations" (Block et al., 2025):
task families and samples (:mod:`~lowrank_theory.tasks`), losses through sufficient statistics
(:mod:`~lowrank_theory.losses`), standard retraining (:mod:`~lowrank_theory.retraining`), LoRA-ML
(:mod:`~lowrank_theory.lora_ml`), fine-tuning (:mod:`~lowrank_theory.adaptation`) and metrics
(:mod:`~lowrank_theory.metrics`). The torch backend lives in :mod:`lowrank_theory.neural` and
is imported only on request.
"""

from importlib.metadata import PackageNotFoundError, version

from lowrank_theory import metrics
from lowrank_theory.adaptation import FineTuneResult, fine_tune
from lowrank_theory.adapters import Adapter, AsymmetricAdapter, SymmetricAdapter
from lowrank_theory.lora_ml import LoRAMLResult, fit_lora_ml, lora_ml_gradient, lora_ml_objective
from lowrank_theory.retraining import standard_retraining
from lowrank_theory.tasks import TaskData, TaskFamily

try:
    __version__ = version("lowrank-theory")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

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
    "metrics",
    "__version__",
]
