"""Configs of the neural experiments and their presets (``cpu`` and ``paper``).

A config holds everything that changes an experiment's numbers except the seeds, as the
synthetic experiments' configs do (:class:`lowrank_theory.simulations.configs.ExperimentConfig`): its hash names
its result files, its scalar fields become columns of every row, and the ``preset`` and
``steps_scale`` fields record which preset and which step scale produced a table.

Presets: ``paper`` is the authors' published setting, checked against their scripts (listed in
each config's docstring, with what this code does differently and why). ``cpu`` keeps the
paper's shape (every setting, every method) with fewer steps and seeds, so it finishes in
minutes on two cores. ``steps_scale`` multiplies every step budget of a preset (at least one
step each): fidelity traded for time.

This module imports neither torch nor the numerical core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from lowrank_theory.simulations.configs import ExperimentConfig, Sweep
from lowrank_theory.simulations.fields import param

from lowrank_theory._validation import check_choice, check_float

__all__ = [
    "PRESETS",
    "RETRAIN_METHODS",
    "FINETUNE_MODES",
    "scaled",
    "NeuralConfig",
    "ShallowConfig",
    "SHALLOW_D_VALUES",
    "SHALLOW_T_VALUES",
    "SHALLOW_BASE_D",
    "SHALLOW_BASE_T",
    "shallow_sweep",
    "VisionConfig",
    "vision_sweep",
    "LanguageConfig",
    "language_sweep",
    "SWEEPS",
    "preset_sweep",
    "CONFIG_TYPES",
    "preset_base",
    "unit_configs",
]

#: The presets every neural experiment defines.
PRESETS: tuple[str, ...] = ("cpu", "paper")
#: Retraining methods the experiments know (the torch backend's dispatcher has the same).
RETRAIN_METHODS: tuple[str, ...] = ("sr", "lora_ml", "last_layer_ml", "reptile", "maml", "fomaml")
#: Fine-tuning modes: a fresh LoRA adapter, or a fresh last layer.
FINETUNE_MODES: tuple[str, ...] = ("lora", "last_layer")


def scaled(steps: int, scale: float) -> int:
    """``steps * scale`` rounded to an integer, at least 1.

    Examples
    --------
    >>> scaled(40000, 0.002), scaled(15000, 1e-9)
    (80, 1)
    """
    return max(1, round(steps * scale))


@dataclass(frozen=True)
class NeuralConfig(ExperimentConfig):
    """Common fields: which preset and step scale a config came from."""

    preset: str = param("paper", "the preset the config starts from (recorded in the table)",
                        choices=PRESETS)
    steps_scale: float = param(1.0, "multiplies every step budget of the preset",
                               minimum=0, exclusive=True)

    def _validate(self) -> None:
        # The fields' own checks (types, ranges, choices) come from their param metadata;
        # _validate holds only conditions that tie fields together.
        pass


# --------------------------------------------------------------------------- shallow
@dataclass(frozen=True)
class ShallowConfig(NeuralConfig):
    """One (d, T) setting of the shallow-network experiment.

    Teacher f_t(x) = c*^T sigmoid((A* + U*_t U*_t^T) x) + noise, student
    f_t(x) = c^T sigmoid((A + B_t V_t) x); SR fits one (A, c) to all T tasks, LoRA-ML fits
    (A, c) and a rank-k adapter B_t V_t per task. Each retrained base is then fine-tuned on n
    samples of an unseen task T + 1 with a fresh rank-r adapter (A and c frozen), for every r in
    ``finetune_ranks``.

    The authors' setting (``paper``; their ``shallow/run.py`` and ``run_vary_T.py``):
    A*, U*_t (k = 1) and c* with i.i.d. N(0, 1) entries (A* not symmetrised), inputs
    x ~ N(0, I), noise N(0, 0.1^2); N = 1000 samples per retraining task, n = 100 for the unseen
    task; d in {5, 10, 20} at T = 3 and T in {2, 3, 5, 10} at d = 10, 10 trials each. Student:
    ``nn.Linear`` default initialisation (Kaiming-uniform A and c), asymmetric adapters
    (V_t Kaiming-uniform, B_t = 0, scaling 1) on the hidden layer only. Retraining: full-batch
    AdamW, lr 1e-3, weight decay 0.01 (torch's default), 40,000 steps, on all of A, c and the
    adapters. Fine-tuning: full-batch AdamW, lr 1e-3, 15,000 steps, on a fresh rank-k adapter
    only (A and c frozen), and at T = 2 also on a fresh rank-3k adapter. Reported: the
    fine-tuned model's squared error against the noise-free outputs at the n fine-tuning
    inputs (our ``fit_error``), median over trials.

    Differences, all deliberate: each (seed, setting) draws its own teacher and student from
    seeds derived with ``numpy.random.SeedSequence`` (the authors draw all trials from one
    torch seed, 613); SR and LoRA-ML of one seed start fine-tuning from the same fresh adapter
    (the authors draw two); the per-task losses are averaged, not summed (Adam's steps do not
    depend on the loss scale, up to its eps = 1e-8); the table adds the error on ``n_test``
    fresh samples (``test_loss`` against noisy targets, ``test_error`` against clean ones).

    The ``cpu`` preset keeps every setting and both methods with 5 seeds and a quarter of the
    steps (10,000 + 3,750).
    """

    d: int = param(10, "input dimension and hidden width", minimum=1)
    T: int = param(3, "number of retraining tasks", minimum=1)
    k: int = param(1, "rank of the teacher's offsets and of the retraining adapters",
                   minimum=1, note="<= d")
    N: int = param(1000, "samples per retraining task", minimum=1)
    n: int = param(100, "fine-tuning samples of the unseen task", minimum=1)
    n_test: int = param(2000, "test samples of the unseen task", minimum=1)
    sigma: float = param(0.1, "noise standard deviation", minimum=0)
    input_std: float = param(1.0, "standard deviation of the inputs x", minimum=0,
                             exclusive=True)
    symmetric_base: bool = param(False, "symmetrise the teacher's base A*")
    lr: float = param(1e-3, "AdamW learning rate of retraining", minimum=0, exclusive=True)
    weight_decay: float = param(0.01, "AdamW weight decay", minimum=0)
    retrain_steps: int = param(40000, "full-batch retraining steps", minimum=1)
    finetune_steps: int = param(15000, "full-batch fine-tuning steps", minimum=1)
    finetune_lr: float = param(1e-3, "AdamW learning rate of fine-tuning", minimum=0,
                               exclusive=True)
    finetune_ranks: tuple[int, ...] = param((1,), "ranks of the fresh fine-tuning adapters, one "
                                            "run each (the paper adds 3k at T = 2)",
                                            minimum=1, distinct=True)
    methods: tuple[str, ...] = param(("sr", "lora_ml"), "retraining methods",
                                     choices=("sr", "lora_ml"), distinct=True)

    SCHEMA: ClassVar[int] = 2

    def _validate(self) -> None:
        super()._validate()
        if self.k > self.d:
            raise ValueError(f"k must be <= d; got k={self.k}, d={self.d}")

    @property
    def cost(self) -> int:
        """Relative work of one retraining step, T N d^2 (orders the sweep, biggest first)."""
        return self.T * self.N * self.d**2


#: Settings of the two sweeps: d at T = 3, and T at d = 10 (the centre (10, 3) once).
SHALLOW_D_VALUES: tuple[int, ...] = (5, 10, 20)
SHALLOW_T_VALUES: tuple[int, ...] = (2, 3, 5, 10)
SHALLOW_BASE_D, SHALLOW_BASE_T = 10, 3


def shallow_sweep(preset: str = "paper", steps_scale: float = 1.0,
                  seeds: tuple[int, ...] | None = None) -> Sweep:
    """The shallow experiment's settings as one config each, biggest first.

    Parameters
    ----------
    preset : {"cpu", "paper"}
    steps_scale : float, default 1
        Multiplies both step budgets.
    seeds : tuple of int, optional
        Default: 0..9 (``paper``) or 0..4 (``cpu``).

    Returns
    -------
    Sweep
        Six configs: d in {5, 10, 20} at T = 3 and T in {2, 5, 10} at d = 10; the T = 2 config
        fine-tunes with ranks k and 3k.

    Examples
    --------
    >>> sweep = shallow_sweep("paper")
    >>> sorted((c.d, c.T, c.finetune_ranks) for c in sweep.configs)[:2]
    [(5, 3, (1,)), (10, 2, (1, 3))]
    >>> sweep.configs[0].retrain_steps, len(sweep.seeds)
    (40000, 10)
    """
    check_choice(preset, "preset", PRESETS)
    check_float(steps_scale, "steps_scale", strict=True)
    base = {"paper": (40000, 15000, 10), "cpu": (10000, 3750, 5)}[preset]
    retrain, finetune, n_seeds = base
    common = {"preset": preset, "steps_scale": float(steps_scale),
              "retrain_steps": scaled(retrain, steps_scale),
              "finetune_steps": scaled(finetune, steps_scale)}
    k = ShallowConfig.k
    pairs = [(d, SHALLOW_BASE_T) for d in SHALLOW_D_VALUES]
    pairs += [(SHALLOW_BASE_D, T) for T in SHALLOW_T_VALUES if T != SHALLOW_BASE_T]
    configs = [
        ShallowConfig(d=d, T=T, finetune_ranks=(k, 3 * k) if T == 2 else (k,), **common)
        for d, T in pairs
    ]
    configs.sort(key=lambda c: -c.cost)
    return Sweep(tuple(configs), tuple(range(n_seeds)) if seeds is None else tuple(seeds))


# --------------------------------------------------------------------------- vision
@dataclass(frozen=True)
class VisionConfig(NeuralConfig):
    """Binary class-pair tasks with an MLP-Mixer: retrain on four pairs, fine-tune on a fifth.

    The authors' setting (``paper``; their ``vision/run_cifar.py``, ``train_utils.py``,
    ``MLP.py`` and ``scripts/*.sh``): CIFAR-10, retraining pairs {0,1}, {2,3}, {4,5}, {6,7},
    unseen pair {8,9}, label = class mod 2; MLP-Mixer depth 1, patch 4, width 512, token MLP
    64 -> 256 -> 64, channel MLP 512 -> 256 -> 512, dropout 0.1; random crop (padding 4) and
    horizontal flip on training images; LoRA rank 1 on every linear layer; Adam (L2 weight
    decay 1e-5), cosine schedule, batch 256, 100 epochs, lr 1e-4 for SR, LoRA-ML and last-layer
    ML; Reptile with inner SGD lr 1e-2 for 20 batches per task and an outer Adam lr 1e-5 for
    5 epochs; fine-tuning (LoRA rank 1 or a fresh last layer) on all 10,000 training images
    of {8,9}, Adam lr 5e-4, weight decay 1e-5, cosine, 100 epochs, batch 256; seeds 1..5.

    Differences: one logit with a logistic loss instead of two with softmax (the same model
    class); no dropout and no mixed precision; every retraining method sees one batch of
    ``batch_size`` images of every task per step for ``retrain_steps`` steps (the authors'
    SR draws batches of 256 from the pooled tasks, LoRA-ML 256 per task); the batches are
    random subsets, not epoch shuffles; the final model is kept (the authors keep the
    retrained model of best validation accuracy and also report the best test accuracy over
    fine-tuning epochs); Reptile is :func:`~lowrank_theory.neural.methods.reptile` (AdamW inner
    steps, interpolating outer update, on the same step budget); the authors' code flips the
    sign of the vision Reptile update, which is not copied.

    The ``cpu`` preset uses scikit-learn's bundled 8 x 8 digits (pairs of digits), a width-32
    Mixer with patch 2, rank 2, AdamW lr 1e-3, 500 retraining and 200 fine-tuning steps on 20
    samples, 5 seeds.
    """

    dataset: str = param("cifar10", "image data set (digits: scikit-learn's bundled 8x8)",
                         choices=("digits", "cifar10"))
    retrain_pairs: tuple[tuple[int, int], ...] = param(
        ((0, 1), (2, 3), (4, 5), (6, 7)), "class pairs of the retraining tasks (label = class mod 2)",
        minimum=0, distinct=True)
    test_pair: tuple[int, int] = param((8, 9), "class pair of the unseen task", minimum=0)
    image_size: int = param(32, "image side in pixels", minimum=1, note="a multiple of patch")
    channels: int = param(3, "colour channels", minimum=1)
    patch: int = param(4, "Mixer patch side", minimum=1)
    width: int = param(512, "Mixer channel width", minimum=1)
    token_hidden: int = param(256, "hidden width of the token MLP", minimum=1)
    channel_hidden: int = param(256, "hidden width of the channel MLP", minimum=1)
    depth: int = param(1, "Mixer blocks", minimum=1)
    rank: int = param(1, "rank of the retraining adapters", minimum=1)
    finetune_rank: int = param(1, "rank of the fresh fine-tuning adapter", minimum=1)
    methods: tuple[str, ...] = param(("sr", "lora_ml", "reptile", "last_layer_ml"),
                                     "retraining methods", choices=RETRAIN_METHODS,
                                     distinct=True)
    finetune_modes: tuple[str, ...] = param(("lora", "last_layer"), "fine-tuning modes: a "
                                            "fresh LoRA adapter or a fresh last layer",
                                            choices=FINETUNE_MODES, distinct=True)
    optimizer: str = param("adam", "optimiser (adam: L2 weight decay)", choices=("adam", "adamw"))
    schedule: str = param("cosine", "learning-rate schedule", choices=("constant", "cosine"))
    augment: bool = param(True, "random crop and horizontal flip of training images")
    weight_decay: float = param(1e-5, "weight decay", minimum=0)
    retrain_steps: int = param(15625, "retraining steps (one batch of every task each)",
                               minimum=1)
    batch_size: int = param(64, "retraining batch size per task", minimum=1)
    lr: float = param(1e-4, "retraining learning rate", minimum=0, exclusive=True)
    reptile_inner_steps: int = param(20, "Reptile inner steps per task", minimum=1)
    reptile_inner_lr: float = param(1e-2, "Reptile inner learning rate", minimum=0,
                                    exclusive=True)
    reptile_meta_lr: float = param(0.5, "Reptile interpolation step", minimum=0,
                                   exclusive=True)
    n_finetune: int = param(10000, "fine-tuning images of the unseen pair", minimum=1)
    finetune_steps: int = param(4000, "fine-tuning steps", minimum=1)
    finetune_batch_size: int = param(256, "fine-tuning batch size", minimum=1)
    finetune_lr: float = param(5e-4, "fine-tuning learning rate", minimum=0, exclusive=True)

    SCHEMA: ClassVar[int] = 2

    def _validate(self) -> None:
        super()._validate()
        if self.image_size % self.patch:
            raise ValueError(f"image_size={self.image_size} must be a multiple of "
                             f"patch={self.patch}")

    def to_dict(self) -> dict[str, Any]:
        """Fields as JSON values (the class pairs become lists of lists)."""
        out = super().to_dict()
        out["retrain_pairs"] = [list(p) for p in self.retrain_pairs]
        return out


def vision_sweep(preset: str = "paper", steps_scale: float = 1.0,
                 seeds: tuple[int, ...] | None = None) -> Sweep:
    """The vision experiment: one config per retraining method, seeds 0..4 by default.

    One config per method makes each method a unit of work of its own: units run in parallel
    worker processes, and a killed run loses at most the methods in flight.

    Examples
    --------
    >>> sweep = vision_sweep("cpu", steps_scale=0.1)
    >>> [c.methods for c in sweep.configs], sweep.configs[0].retrain_steps
    ([('sr',), ('lora_ml',), ('reptile',), ('last_layer_ml',)], 50)
    """
    check_choice(preset, "preset", PRESETS)
    check_float(steps_scale, "steps_scale", strict=True)
    if preset == "paper":
        config = VisionConfig(steps_scale=float(steps_scale))
    else:
        config = VisionConfig(
            preset="cpu", steps_scale=float(steps_scale), dataset="digits", image_size=8,
            channels=1, patch=2, width=32, token_hidden=16, channel_hidden=128, rank=2,
            finetune_rank=2, optimizer="adamw", schedule="constant", augment=False,
            weight_decay=0.01, retrain_steps=500, batch_size=32, lr=1e-3,
            reptile_inner_steps=5, reptile_inner_lr=1e-3, n_finetune=20, finetune_steps=200,
            finetune_batch_size=20, finetune_lr=1e-3,
        )
    config = replace(config, retrain_steps=scaled(config.retrain_steps, steps_scale),
                     finetune_steps=scaled(config.finetune_steps, steps_scale))
    configs = tuple(replace(config, methods=(m,)) for m in config.methods)
    return Sweep(configs, tuple(range(5)) if seeds is None else tuple(seeds))


# --------------------------------------------------------------------------- language
@dataclass(frozen=True)
class LanguageConfig(NeuralConfig):
    """ConvAI2 persona groups as tasks, 20-candidate next-utterance selection with RoBERTa.

    The authors' setting (their ``convai/*.py`` and ``scripts/*.sh``): ConvAI2
    (``train_self_original.txt``), personas 0..9 as T = 10 tasks, a RoBERTa-base sequence
    classifier scoring (context, candidate) pairs, LoRA rank 8, alpha 16, dropout 0.1 on all
    linear layers; AdamW lr 5e-5, batch 8, 10 epochs, linear schedule with 10% warm-up;
    Reptile with 20 inner AdamW steps at lr 5e-5 and an outer AdamW at lr 1e-4; seeds 0..4.

    ``paper`` here: T = 10, rank 8, alpha 16, AdamW lr 5e-5, batch 8, 20 Reptile inner steps,
    5 seeds; differences: a fixed budget of ``retrain_steps`` steps of one batch per task
    instead of 10 epochs, no schedule and no adapter dropout, up to ``examples_per_task``
    examples per persona group, persona groups taken largest first from the file (the authors
    use a persona map of their own), Reptile as
    :func:`~lowrank_theory.neural.methods.reptile`. The ``cpu`` preset runs synthetic persona
    dialogues with a tiny random RoBERTa unless ``--data-dir`` points to ConvAI2.
    """

    num_tasks: int = param(10, "persona groups used as retraining tasks", minimum=1)
    examples_per_task: int = param(128, "examples per persona group (at most)", minimum=1)
    n_finetune: int = param(32, "fine-tuning examples of the unseen persona", minimum=1)
    n_test: int = param(128, "test examples of the unseen persona", minimum=1)
    max_length: int = param(64, "tokens per (context, candidate) pair", minimum=1)
    rank: int = param(8, "LoRA rank", minimum=1)
    alpha: float = param(16.0, "LoRA scaling alpha (the update is scaled by alpha / rank)",
                         minimum=0, exclusive=True)
    methods: tuple[str, ...] = param(("sr", "lora_ml", "reptile"), "retraining methods",
                                     choices=RETRAIN_METHODS, distinct=True)
    finetune_modes: tuple[str, ...] = param(("lora",), "fine-tuning modes",
                                            choices=FINETUNE_MODES, distinct=True)
    retrain_steps: int = param(1000, "retraining steps (one batch of every task each)",
                               minimum=1)
    batch_size: int = param(8, "batch size", minimum=1)
    lr: float = param(5e-5, "AdamW learning rate of retraining", minimum=0, exclusive=True)
    reptile_inner_steps: int = param(20, "Reptile inner steps per task", minimum=1)
    reptile_meta_lr: float = param(0.5, "Reptile interpolation step", minimum=0,
                                   exclusive=True)
    finetune_steps: int = param(200, "fine-tuning steps", minimum=1)
    finetune_lr: float = param(1e-4, "AdamW learning rate of fine-tuning", minimum=0,
                               exclusive=True)
    tiny_model: bool = param(False, "a tiny random RoBERTa instead of roberta-base (no download)")
    hidden: int = param(32, "hidden size of the tiny model", minimum=1)

    SCHEMA: ClassVar[int] = 2



def language_sweep(preset: str = "paper", steps_scale: float = 1.0,
                   seeds: tuple[int, ...] | None = None) -> Sweep:
    """The language experiment: one config, seeds 0..4 (``paper``) or 0..2 (``cpu``)."""
    check_choice(preset, "preset", PRESETS)
    check_float(steps_scale, "steps_scale", strict=True)
    if preset == "paper":
        config = LanguageConfig(steps_scale=float(steps_scale))
        n_seeds = 5
    else:
        config = LanguageConfig(
            preset="cpu", steps_scale=float(steps_scale), num_tasks=4, examples_per_task=48,
            n_finetune=16, n_test=64, max_length=24, rank=4, alpha=8.0, retrain_steps=150,
            batch_size=8, lr=3e-3, reptile_inner_steps=5, finetune_steps=100,
            finetune_lr=3e-3, tiny_model=True,
        )
        n_seeds = 3
    config = replace(config, retrain_steps=scaled(config.retrain_steps, steps_scale),
                     finetune_steps=scaled(config.finetune_steps, steps_scale))
    return Sweep((config,), tuple(range(n_seeds)) if seeds is None else tuple(seeds))


#: Sweep builder of each experiment, by the name ``lowrank-theory neural --experiment`` takes.
SWEEPS = {"shallow": shallow_sweep, "vision": vision_sweep, "language": language_sweep}


def preset_sweep(experiment: str, preset: str, steps_scale: float = 1.0,
                 seeds: tuple[int, ...] | None = None) -> Sweep:
    """The sweep of ``experiment`` at ``preset`` and ``steps_scale`` (see the module notes).

    Raises
    ------
    ValueError
        If ``experiment`` or ``preset`` is unknown, or ``steps_scale`` is not a positive
        finite number.
    """
    check_choice(experiment, "experiment", tuple(SWEEPS))
    if not (isinstance(steps_scale, int | float) and math.isfinite(steps_scale)):
        raise ValueError(f"steps_scale must be a finite number > 0, got {steps_scale!r}")
    return SWEEPS[experiment](preset, steps_scale, seeds)


#: Config type of each experiment, by the name a sweep file's ``experiment`` takes.
CONFIG_TYPES: dict[str, type[NeuralConfig]] = {
    "shallow": ShallowConfig, "vision": VisionConfig, "language": LanguageConfig}


def preset_base(experiment: str, preset: str, steps_scale: float = 1.0) -> NeuralConfig:
    """The preset's config at its default point: where a sweep file's grid starts.

    Shallow: the setting d = 10, T = 3 (fine-tuning rank k); vision: the one config with every
    retraining method; language: the one config. The step budgets are the preset's times
    ``steps_scale``.

    Examples
    --------
    >>> base = preset_base("shallow", "cpu", steps_scale=0.1)
    >>> base.d, base.T, base.retrain_steps, base.finetune_steps
    (10, 3, 1000, 375)
    >>> preset_base("vision", "cpu").methods
    ('sr', 'lora_ml', 'reptile', 'last_layer_ml')
    """
    configs = preset_sweep(experiment, preset, steps_scale).configs
    if experiment == "shallow":
        return next(c for c in configs if (c.d, c.T) == (SHALLOW_BASE_D, SHALLOW_BASE_T))
    if experiment == "vision":
        return replace(configs[0], methods=tuple(m for c in configs for m in c.methods))
    return configs[0]


def unit_configs(experiment: str, configs: tuple[NeuralConfig, ...]) -> tuple[NeuralConfig, ...]:
    """``configs`` split as the preset splits its own: vision runs one config per method.

    One method per config makes each method a unit of work (parallel workers; a killed run
    loses only the methods in flight), as :func:`vision_sweep` does.

    Examples
    --------
    >>> [c.methods for c in unit_configs("vision", (preset_base("vision", "cpu"),))][:2]
    [('sr',), ('lora_ml',)]
    """
    if experiment != "vision":
        return configs
    return tuple(replace(c, methods=(m,)) for c in configs for m in c.methods)
