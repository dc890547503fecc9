"""Every claim of the paper as a runnable check (docs/theory.md, sections 4 to 14).

A check tests one claim and returns a :class:`CheckResult`: the claim, the paper reference, the
predicted and measured values, the tolerance, whether the claim holds, its *kind* and its
*margin* -- decades of headroom, ``log10(tolerance / error)``, positive exactly when the claim
holds. The kind says what a failure means: ``"theorem"`` (a claim of the paper or one proved in
docs/theory.md), ``"consistency"`` (an identity of the set-up: a failure is a bug) or ``"info"``
(a measurement that never fails the run).

The registry :data:`CHECKS` holds one record per check (:class:`Check`): name, kind, statement,
references, the function that tests it, how it draws its instances, how it runs on a family you
bring, which families it applies to, and the negative control it must fail. Names map to Python
by one rule: the check printed as ``x-y`` is ``CHECKS["x-y"]`` (or ``CHECKS.x_y``), and its
function is ``check_x_y`` in this package. :func:`run_checks` is what ``lowrank-theory check``
prints, :func:`run_controls` what ``--controls`` prints, :func:`run_on_family` what
``--family FILE`` prints.

Modules: :mod:`.result` (the record of a result, re-exported from
:mod:`lowrank_theory.check_result`, and the shared scales), :mod:`.constructions` (closed-form
and searched points), :mod:`.retraining_checks` (Theorem 1 and its corollary),
:mod:`.global_minima` (Theorems 2 and 3, one task), :mod:`.two_tasks` (Theorem 4),
:mod:`.landscape_checks` ((A_SR, 0), spurious minima, the Hessian), :mod:`.finite_sample` (the
fine-tuning rate, end to end), :mod:`.empirical` and :mod:`.asymmetric` (measurements beyond the
statements), :mod:`.instances` (instance settings and generators), :mod:`.record` (the record
and the registry type), :mod:`.records` (every record), :mod:`.registry` (the runs),
:mod:`.report` (the table, the JSON and the list).
"""

from lowrank_theory.schemes.checks import check_rank_k_suffices as check_schemes_rank_k
from lowrank_theory.schemes.checks import check_sr_crossing as check_schemes_sr_crossing
from lowrank_theory.schemes.checks import (
    check_sr_floor_across_schemes as check_schemes_sr_floor,
)

from .asymmetric import asymmetric_kernel_dimension, check_asymmetric_retraining
from .constructions import (
    SPURIOUS_CATALOGUE,
    catalogued_spurious_family,
    collinear_minimum,
    find_spurious_minimum,
    global_minima_from_random_starts,
    hyperbolic_member,
    hyperbolic_minimum,
    hyperbolic_parameter,
    independence_counterexample,
    offset_columns_independent,
    structured_stationary_points,
    t1_minima,
)
from .empirical import (
    check_recovery_boundary,
    check_recovery_paper_protocol,
    check_relaxation,
    check_sample_scaling,
    check_sample_scaling_lora_ml,
    check_sample_scaling_sr,
    first_order_identifiable,
    first_order_kernel_dimension,
    paper_protocol_runs,
    recovery_outcome,
    sample_scaling_errors,
)
from .finite_sample import check_e2e_finite_sample, check_ft_rate, expected_rrr_excess
from .global_minima import (
    check_independence_needed,
    check_rank_2k,
    check_recovery_general_covariance,
    check_recovery_t3,
    check_rotation_invariance,
    check_t1_nonidentifiable,
    check_truth_global,
)
from .instances import InstanceSettings, PerTask
from .landscape_checks import (
    check_hessian_exact,
    check_spurious_minima,
    check_zero_is_stationary,
    check_zero_saddle,
    check_zero_t1_global,
)
from .record import Check, Registry, handle_name
from .registry import CHECKS, Skipped, run_checks, run_controls, run_on_family
from .report import GLOSSARY, format_table
from .result import KINDS, MARGIN_CAP, CheckResult, NotApplicable
from .retraining_checks import (
    check_ft_sr_plateau,
    check_sr_adapt_rank,
    check_sr_floor,
    check_sr_floor_every_n,
    check_sr_floor_general_covariance,
    check_sr_global_minimum,
    check_sr_rank,
    predicted_sr_floor,
)
from .two_tasks import (
    check_t2_gradient_global,
    check_t2_hyperbolic,
    check_t2_paper_protocol,
    check_t2_rank_3k,
    check_t2_strict_saddle,
)

#: Names of the check functions before they were named after their checks, kept as aliases.
FORMER_NAMES = {
    "check_truth_global_minimum": "check_truth_global",
    "check_rank_bound": "check_rank_2k",
    "check_exact_recovery": "check_recovery_t3",
    "check_hyperbolic_family": "check_t2_hyperbolic",
    "check_strict_saddle": "check_t2_strict_saddle",
    "check_gradient_finds_global": "check_t2_gradient_global",
    "check_rank_3k_fine_tuning": "check_t2_rank_3k",
    "check_spurious_minimum": "check_spurious_minima",
    "check_exact_hessian": "check_hessian_exact",
    "check_zero_global_t1": "check_zero_t1_global",
    "check_sr_plateau": "check_ft_sr_plateau",
    "check_sr_adaptation_rank": "check_sr_adapt_rank",
    "check_paper_protocol": "check_recovery_paper_protocol",
}
globals().update({old: globals()[new] for old, new in FORMER_NAMES.items()})

__all__ = [
    "CheckResult",
    "NotApplicable",
    "KINDS",
    "MARGIN_CAP",
    "CHECKS",
    "Check",
    "Registry",
    "Skipped",
    "handle_name",
    "InstanceSettings",
    "PerTask",
    "GLOSSARY",
    "FORMER_NAMES",
    "run_checks",
    "run_controls",
    "run_on_family",
    "format_table",
    # the check functions, one per record: check_<name with '-' as '_'>
    "check_sr_global_minimum",
    "check_sr_rank",
    "check_sr_floor",
    "check_sr_floor_every_n",
    "check_ft_sr_plateau",
    "check_sr_adapt_rank",
    "check_sr_floor_general_covariance",
    "check_schemes_sr_floor",
    "check_schemes_rank_k",
    "check_schemes_sr_crossing",
    "check_truth_global",
    "check_rotation_invariance",
    "check_rank_2k",
    "check_recovery_t3",
    "check_recovery_general_covariance",
    "check_recovery_boundary",
    "check_independence_needed",
    "check_spurious_minima",
    "check_t2_hyperbolic",
    "check_t2_strict_saddle",
    "check_t2_gradient_global",
    "check_t2_rank_3k",
    "check_t2_paper_protocol",
    "check_t1_nonidentifiable",
    "check_zero_saddle",
    "check_zero_t1_global",
    "check_ft_rate",
    "check_sample_scaling_lora_ml",
    "check_sample_scaling_sr",
    "check_e2e_finite_sample",
    "check_recovery_paper_protocol",
    "check_relaxation",
    "check_asymmetric_retraining",
    "check_hessian_exact",
    "check_sample_scaling",
    "check_zero_is_stationary",
    # constructions and measurements
    "SPURIOUS_CATALOGUE",
    "catalogued_spurious_family",
    "collinear_minimum",
    "find_spurious_minimum",
    "global_minima_from_random_starts",
    "hyperbolic_member",
    "hyperbolic_minimum",
    "hyperbolic_parameter",
    "independence_counterexample",
    "offset_columns_independent",
    "structured_stationary_points",
    "t1_minima",
    "first_order_identifiable",
    "first_order_kernel_dimension",
    "asymmetric_kernel_dimension",
    "paper_protocol_runs",
    "recovery_outcome",
    "sample_scaling_errors",
    "expected_rrr_excess",
    "predicted_sr_floor",
    # former names of the check functions (FORMER_NAMES), kept as aliases
    *FORMER_NAMES,
]
