"""The neural experiments as runner experiments, and the checks of their inputs.

``EXPERIMENTS`` maps the names ``lowrank-theory neural --experiment`` takes to
:class:`lowrank_theory.simulations.runner.Experiment` objects (quick sweep: the ``cpu`` preset; full: ``paper``),
run like the synthetic ones: units written atomically, resumed after a kill, provenance columns,
local or dask executors.
"""

from __future__ import annotations

from pathlib import Path

from lowrank_theory.simulations.neural.configs import (
    LanguageConfig,
    NeuralConfig,
    VisionConfig,
    language_sweep,
    shallow_sweep,
    vision_sweep,
)
from lowrank_theory.simulations.neural.language import run_language, tasks_of
from lowrank_theory.simulations.neural.shallow import run_shallow
from lowrank_theory.simulations.neural.vision import check_cifar, run_vision
from lowrank_theory.simulations.runner import Experiment

from lowrank_theory.neural.data import DataMissingError

__all__ = [
    "EXPERIMENTS",
    "check_inputs",
]

EXPERIMENTS: dict[str, Experiment] = {
    "shallow": Experiment(
        name="neural_shallow",
        title="Shallow network c^T sigmoid((A + U_t U_t^T) x): LoRA-ML against SR",
        claim="LoRA-ML retraining leaves a base that a rank-k adapter fine-tunes to the unseen "
              "task; SR's base does not (rank-3k at T = 2)",
        run=run_shallow,
        quick=shallow_sweep("cpu"),
        full=shallow_sweep("paper"),
        seeds_per_unit=None,
        options=("device", "threads", "graph", "progress"),
    ),
    "vision": Experiment(
        name="neural_vision",
        title="Class-pair tasks with an MLP-Mixer: SR, LoRA-ML, Reptile, last-layer ML",
        claim="LoRA-ML retraining improves LoRA fine-tuning on an unseen class pair",
        run=run_vision,
        quick=vision_sweep("cpu"),
        full=vision_sweep("paper"),
        seeds_per_unit=None,
        options=("device", "data_dir", "threads", "progress"),
    ),
    "language": Experiment(
        name="neural_language",
        title="Persona groups with a RoBERTa candidate scorer: SR, LoRA-ML, Reptile",
        claim="LoRA-ML retraining improves LoRA fine-tuning on an unseen persona",
        run=run_language,
        quick=language_sweep("cpu"),
        full=language_sweep("paper"),
        seeds_per_unit=1,
        options=("device", "data_dir", "model_dir", "threads", "progress"),
    ),
}


def check_inputs(config: NeuralConfig, data_dir: str | None, model_dir: str | None) -> None:
    """Check that the files ``config`` reads exist, before any compute.

    Raises
    ------
    DataMissingError
        With the message the command line prints (where to put the data, what to pass).
    """
    if isinstance(config, VisionConfig) and config.dataset == "cifar10":
        check_cifar(data_dir)
    if isinstance(config, LanguageConfig):
        tasks_of(config, data_dir)
        if not config.tiny_model or model_dir is not None:
            if model_dir is None or not (Path(model_dir).expanduser() / "config.json").is_file():
                raise DataMissingError(
                    "the language experiment needs roberta-base in a local folder (e.g. on a "
                    "machine with network: huggingface-cli download roberta-base --local-dir "
                    "~/models/roberta-base) passed as --model-dir"
                )
