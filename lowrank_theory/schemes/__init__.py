"""Adaptation schemes from the related literature, compared at equal parameter budget.

A scheme (:class:`AdaptationScheme`) adapts a frozen retrained base to a new task with at most
``budget`` trainable parameters (a rank-r ``U V^T`` adapter counts ``2 d r``) and returns a
:class:`SchemeResult`. Schemes: fixed-rank LoRA, exact or by gradient descent
(:class:`FixedRankLoRA`); dense fine-tuning (:class:`FullFineTune`); rank chosen by salience (:class:`AdaptiveRankLoRA`); a mixture of
retrained adapters (:class:`MixtureOfAdapters`); subspace-constrained initialisation
(:class:`SubspaceInit`); weight interpolation (:class:`WeightInterpolation`); post-fine-tuning
perturbation against a harmful task (:class:`PostPerturbation`). The checks in
:mod:`~lowrank_theory.schemes.checks` state the SR floor and the LoRA-ML rank-k claim across
schemes. Definitions: docs/schemes.md.
"""

from lowrank_theory.schemes.checks import (
    check_rank_k_suffices,
    check_sr_crossing,
    check_sr_floor_across_schemes,
    crossing_budget,
    rank_floor,
)
from lowrank_theory.schemes.interface import (
    AdaptationProblem,
    AdaptationScheme,
    SchemeResult,
    Update,
    least_squares_update,
    lora_params,
    reduced_rank_update,
    residual_cross_covariance,
)
from lowrank_theory.schemes.lora import (
    AdaptiveRankLoRA,
    FixedRankLoRA,
    FullFineTune,
    MixtureOfAdapters,
    mixture_weights,
    noise_variance,
)
from lowrank_theory.schemes.preserving import (
    PostPerturbation,
    SubspaceInit,
    WeightInterpolation,
    cross_validated_weight,
    interpolation_weight,
    preserve_subspaces,
    quadratic_change,
    sphere_maximiser,
)

__all__ = [
    "AdaptationScheme",
    "AdaptationProblem",
    "SchemeResult",
    "Update",
    "FixedRankLoRA",
    "FullFineTune",
    "AdaptiveRankLoRA",
    "MixtureOfAdapters",
    "SubspaceInit",
    "WeightInterpolation",
    "PostPerturbation",
    "lora_params",
    "least_squares_update",
    "reduced_rank_update",
    "residual_cross_covariance",
    "mixture_weights",
    "noise_variance",
    "interpolation_weight",
    "cross_validated_weight",
    "preserve_subspaces",
    "quadratic_change",
    "sphere_maximiser",
    "rank_floor",
    "crossing_budget",
    "check_sr_floor_across_schemes",
    "check_rank_k_suffices",
    "check_sr_crossing",
]
