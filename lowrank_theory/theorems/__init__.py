"""Every claim of the paper as a runnable check (docs/theory.md, sections 4 to 12).

Each ``check_*`` function tests one claim on one given instance and returns a
:class:`CheckResult`: the claim, the paper reference, the predicted and measured values, the
tolerance, whether the claim holds, its *kind* and its *margin* -- decades of headroom,
``log10(tolerance / error)``, positive exactly when the claim holds. The kind says what a
failure means: ``"theorem"`` (a claim of the paper or one proved in docs/theory.md),
``"consistency"`` (an identity of the set-up: a failure is a bug) or ``"info"`` (a measurement
that never fails the run). The registry :data:`CHECKS` pairs every check with the instances it
draws and a negative control it must fail; :func:`run_checks` is what ``lowrank-theory check``
prints.

Modules: :mod:`.result` (the record and tolerances), :mod:`.constructions` (closed-form and
searched points), :mod:`.retraining_checks` (Theorem 1, its corollary, the fine-tuning rate),
:mod:`.checks` (Theorems 2-4, T = 1, the landscape), :mod:`.empirical` (measurements beyond the
statements), :mod:`.instances` (instance generators and negative controls), :mod:`.registry` (kinds,
claims, settings, and the runs),
:mod:`.report` (the table, the JSON and the ``check`` subcommand).
"""

from .checks import (
    check_exact_hessian,
    check_exact_recovery,
    check_gradient_finds_global,
    check_hyperbolic_family,
    check_independence_needed,
    check_rank_3k_fine_tuning,
    check_rank_bound,
    check_rotation_invariance,
    check_spurious_minimum,
    check_strict_saddle,
    check_t1_nonidentifiable,
    check_truth_global_minimum,
    check_zero_global_t1,
    check_zero_is_stationary,
    check_zero_saddle,
)
from .constructions import (
    SPURIOUS_CATALOGUE,
    catalogued_spurious_family,
    collinear_minimum,
    find_spurious_minimum,
    global_minima_from_random_starts,
    hyperbolic_minimum,
    independence_counterexample,
    offset_columns_independent,
    structured_stationary_points,
    t1_minima,
)
from .empirical import (
    check_paper_protocol,
    check_recovery_boundary,
    check_relaxation,
    check_sample_scaling,
    first_order_identifiable,
    first_order_kernel_dimension,
    paper_protocol_runs,
    recovery_outcome,
    sample_scaling_errors,
)
from .instances import InstanceSettings
from .registry import CHECKS, CheckSpec, run_checks, run_controls
from .report import GLOSSARY, format_table
from .result import KINDS, MARGIN_CAP, CheckResult
from .retraining_checks import (
    check_fine_tuning_rate,
    check_sr_adaptation_rank,
    check_sr_floor,
    check_sr_floor_every_n,
    check_sr_global_minimum,
    check_sr_plateau,
    check_sr_rank,
)

__all__ = [
    "CheckResult",
    "KINDS",
    "MARGIN_CAP",
    "CHECKS",
    "CheckSpec",
    "InstanceSettings",
    "GLOSSARY",
    "check_sr_global_minimum",
    "check_sr_rank",
    "check_sr_floor",
    "check_sr_floor_every_n",
    "check_sr_plateau",
    "check_sr_adaptation_rank",
    "check_truth_global_minimum",
    "check_rotation_invariance",
    "check_zero_saddle",
    "check_zero_global_t1",
    "check_zero_is_stationary",
    "check_rank_bound",
    "check_exact_recovery",
    "independence_counterexample",
    "check_independence_needed",
    "collinear_minimum",
    "hyperbolic_minimum",
    "check_hyperbolic_family",
    "structured_stationary_points",
    "check_strict_saddle",
    "check_gradient_finds_global",
    "check_rank_3k_fine_tuning",
    "t1_minima",
    "check_t1_nonidentifiable",
    "SPURIOUS_CATALOGUE",
    "catalogued_spurious_family",
    "find_spurious_minimum",
    "check_spurious_minimum",
    "check_fine_tuning_rate",
    "offset_columns_independent",
    "first_order_kernel_dimension",
    "first_order_identifiable",
    "recovery_outcome",
    "check_recovery_boundary",
    "paper_protocol_runs",
    "check_paper_protocol",
    "sample_scaling_errors",
    "check_sample_scaling",
    "check_relaxation",
    "check_exact_hessian",
    "global_minima_from_random_starts",
    "run_checks",
    "run_controls",
    "format_table",
]
