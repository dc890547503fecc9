"""Beyond the paper: LoRA-ML retrained with asymmetric adapters ``U_t V_t^T``, as practical LoRA.

The paper's theory uses symmetric adapters ``U_t U_t^T``; LoRA as practised trains
``U_t V_t^T``. With asymmetric adapters a zero-loss base ``A* + D`` needs every
``U*_t U*_t^T - D`` to have rank at most k, PSD or not, so more bases could qualify.
:func:`asymmetric_kernel_dimension` counts the first-order directions of such ``D`` and
:func:`check_asymmetric_retraining` reports where the solvers end (an ``info`` check:
docs/theory.md, section 13.1 gives the measured answer).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from lowrank_theory import stationary
from lowrank_theory._validation import as_seed_generator, check_int
from lowrank_theory.lora_ml import fit_lora_ml
from lowrank_theory.losses import statistics
from lowrank_theory.metrics import base_error
from lowrank_theory.tasks import TaskFamily

from .constructions import _check_family
from .result import CheckResult, make_result

__all__ = ["asymmetric_kernel_dimension", "asymmetric_end_points", "check_asymmetric_retraining"]

#: Objective, relative to the value scale, below which an end point counts as zero loss
#: (L-BFGS reaches ~1e-24 at true zeros; stalls sit many orders above).
ZERO_LOSS_RTOL = 1e-14
#: A zero-loss end point farther than this from ``A*`` (relative) is a base other than ``A*``;
#: closer ones are at ``A*`` up to the slow last digits of L-BFGS (observed: <= 1e-5).
ELSEWHERE_RTOL = 1e-3
#: Singular values of the first-order map below this fraction of the largest count as zero.
KERNEL_RTOL = 1e-9


def asymmetric_kernel_dimension(family: TaskFamily) -> int:
    """Dimension of ``{D in R^(d x d) : P_t D P_t = 0 for all t}``, ``P_t`` off ``range(U*_t)``.

    To first order a base ``A* + D`` keeps every ``U*_t U*_t^T - D`` on the manifold of rank-k
    matrices exactly when ``D`` is tangent to it at ``U*_t U*_t^T``, i.e. ``P_t D P_t = 0``:
    the asymmetric counterpart of
    :func:`~lowrank_theory.theorems.first_order_kernel_dimension`, over all d x d matrices.

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> asymmetric_kernel_dimension(TaskFamily.random(d=5, k=1, T=2, seed=0))
    2
    >>> asymmetric_kernel_dimension(TaskFamily.random(d=5, k=1, T=3, seed=0))
    0
    """
    family = _check_family(family)
    d = family.d
    blocks = []
    for U in family.U_star:
        Q = scipy.linalg.orth(U)
        P = np.eye(d) - Q @ Q.T
        blocks.append(np.kron(P, P))  # vec(P D P) = (P kron P) vec(D), P symmetric
    s = scipy.linalg.svdvals(np.vstack(blocks))
    return int(d * d - np.sum(s > KERNEL_RTOL * max(s[0], 1.0)))


def asymmetric_end_points(
    family: TaskFamily, n_starts: int = 2, seed: int | np.random.Generator | None = 0
) -> list[tuple[float, float]]:
    """``(objective / value scale, |A - A*|_F / |A*|_F)`` where asymmetric LoRA-ML ends.

    The exact solver (its data-driven start) and ``n_starts`` L-BFGS runs from starts with
    i.i.d. ``N(0, 1)`` entries in ``A0``, ``U0`` and ``V0``, all with rank-k ``U_t V_t^T``
    adapters on the population objective.
    """
    family = _check_family(family)
    rng = as_seed_generator(seed)
    d, k, T = family.d, family.k, family.T
    _, value_scale = stationary.problem_scales(statistics(family))
    fits = [fit_lora_ml(family, k, adapter="asymmetric", seed=rng)]
    for _ in range(check_int(n_starts, "n_starts", minimum=0)):
        A0, U0, V0 = (rng.standard_normal(shape) for shape in ((d, d), (T, d, k), (T, d, k)))
        fits.append(fit_lora_ml(family, k, adapter="asymmetric", method="lbfgs", A0=A0, U0=U0,
                                V0=V0, max_iter=5000))
    return [(f.objective / value_scale, base_error(f.A, family.A_star, relative=True))
            for f in fits]


def check_asymmetric_retraining(
    family: TaskFamily, n_starts: int = 2, seed: int | np.random.Generator | None = 0
) -> CheckResult:
    """Informational: asymmetric LoRA-ML's zero-loss end points have ``A^ = A*`` (T >= 3).

    ``holds`` when at least one end point has zero loss and none of them has its base farther
    than ``ELSEWHERE_RTOL`` from ``A*``; the detail gives the end points' objectives and base
    errors and :func:`asymmetric_kernel_dimension`. A T = 2 family, whose asymmetric zero-loss
    set has dimension at least 2, is the control.
    """
    family = _check_family(family)
    ends = asymmetric_end_points(family, n_starts, seed)
    zero = [err for value, err in ends if value <= ZERO_LOSS_RTOL]
    elsewhere = [err for err in zero if err > ELSEWHERE_RTOL]
    stuck = len(ends) - len(zero)
    exact = "zero loss" if ends[0][0] <= ZERO_LOSS_RTOL else f"F/value scale={ends[0][0]:.1e}"
    worst = max(zero, default=float("inf"))
    res = make_result(
        "asymmetric-retraining", "asymmetric adapters U_t V_t^T: LoRA-ML's zero-loss bases are "
        "A* (T >= 3)", "project (beyond the paper)", 0.0, worst, worst, ELSEWHERE_RTOL,
        kind="info", holds=bool(zero) and not elsewhere,
        detail=f"d={family.d}, k={family.k}, T={family.T}: {len(zero)} of {len(ends)} end points "
        f"at zero loss, largest |A^-A*|_F/|A*|_F among them {worst:.1e}; {stuck} stopped at F > 0 "
        f"(the exact solver's end: {exact}); "
        f"first-order kernel of asymmetric base moves: dimension {asymmetric_kernel_dimension(family)}",
    )
    return res
