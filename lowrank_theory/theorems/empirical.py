"""Measurements beyond the paper's statements, each with an ``info`` check that can fail.

- where recovery holds: first-order identifiability of the base, against column independence
  (docs/theory.md, section 6.2);
- how often the paper's own protocol reaches ``A*`` and how often it stalls at a spurious
  minimum (section 12.2);
- how the estimation error of LoRA-ML and of SR scales with N, d and T (section 11);
- the convex trace relaxation as a baseline and a certificate (section 12.3).

The measurement functions return plain records; the ``check_*`` functions turn records into a
:class:`~lowrank_theory.theorems.result.CheckResult` of kind ``"info"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from lowrank_theory import stationary
from lowrank_theory._validation import as_seed_generator, check_choice, check_int
from lowrank_theory.adapters import SymmetricAdapter
from lowrank_theory.lora_ml import (
    PAPER_INIT_SCALE,
    PAPER_INNER_STEPS,
    PAPER_LR_A,
    PAPER_LR_U,
    PAPER_ROUNDS,
    fit_lora_ml,
    lora_ml_objective,
    paper_round,
)
from lowrank_theory.losses import Source, Statistics, statistics
from lowrank_theory.metrics import base_error
from lowrank_theory.paper_protocol import CONVENTIONS
from lowrank_theory.tasks import TaskData, TaskFamily

from .constructions import _check_family, offset_columns_independent
from .result import (
    CheckResult,
    _check_source,
    _source_label,
    make_result,
    problem_scale,
)

__all__ = [
    "first_order_kernel_dimension",
    "first_order_identifiable",
    "recovery_outcome",
    "check_recovery_boundary",
    "ProtocolRun",
    "PROTOCOL_OUTCOMES",
    "paper_protocol_runs",
    "check_recovery_paper_protocol",
    "sample_scaling_errors",
    "scaling_slope",
    "check_sample_scaling",
    "check_sample_scaling_lora_ml",
    "check_sample_scaling_sr",
    "SCALING_HEURISTIC",
    "SCALING_BASE",
    "SCALING_SWEEPS",
    "check_relaxation",
]

#: Singular values of the first-order map below this fraction of the largest (at least 1) count
#: as zero.
KERNEL_RTOL = 1e-9
#: Objective, relative to the value scale, below which a fitted point counts as a zero-loss
#: point when locating the recovery boundary: the solvers reach ~1e-26 at true zero-loss points,
#: while near a nearly flat direction they can stall at ~1e-10 with a visibly wrong base.
ZERO_LOSS_RTOL = 1e-16
#: Relative error ``||A - A*||_F / ||A*||_F`` below which a base counts as ``A*`` (the paper
#: protocol's target; the recovered points of the solvers sit at ~1e-12).
REACHED_RTOL = 1e-6
#: Largest ``|slope - predicted|`` of the estimation error in N for the scaling to count as
#: the parametric rate N^(-1/2): with 4 families per N and N spread over a factor 64, the
#: slope's standard error is ~0.05 for LoRA-ML (SR's error varies more from family to family
#: and gets more families).
SCALING_SLOPE_TOL = 0.15
#: Heuristic slopes of the estimation error (docs/theory.md, section 11): noise of size
#: sigma on d^2 entries of A estimated from N T samples gives sigma d / sqrt(N T).
SCALING_HEURISTIC = {"N": -0.5, "d": 1.0, "T": -0.5}
#: Base point (d, T, N) and the sweep values of the finite-sample checks.
SCALING_BASE = (4, 3, 1000)
SCALING_SWEEPS = {"ns": (250, 1000, 4000, 16_000), "ds": (4, 8, 16), "Ts": (3, 6, 12)}
#: Relaxation: the trace penalty relative to the scale of the offsets used for the recovery
#: comparison; its bias on A is O(lam).
RELAXATION_LAM = 1e-3
#: Relaxation: relative error of A below which the relaxation counts as recovering A*.
RELAXATION_RECOVERY_RTOL = 1e-2


# --------------------------------------------------------------------------- identifiability
def first_order_kernel_dimension(family: TaskFamily) -> int:
    """Dimension of the first-order directions along which the base can move at zero loss.

    A zero-loss point has ``A^ = A* + D`` with every ``U*_t U*_t^T - D`` PSD of rank <= k. To
    first order in ``D`` this keeps each ``U*_t U*_t^T - D`` on the manifold of rank-k PSD
    matrices exactly when ``D`` lies in its tangent space at ``U*_t U*_t^T``:
    ``P_t D P_t = 0`` with ``P_t`` the projector onto the orthogonal complement of
    ``range(U*_t)``. The dimension returned is that of ``{D symmetric : P_t D P_t = 0 for all
    t}`` (docs/theory.md, section 6.2). Zero means ``A*`` is an isolated zero-loss base.

    Parameters
    ----------
    family : TaskFamily

    Returns
    -------
    int

    Examples
    --------
    >>> from lowrank_theory import TaskFamily
    >>> first_order_kernel_dimension(TaskFamily.random(d=5, k=1, T=2, seed=0))  # hyperbolic
    1
    >>> first_order_kernel_dimension(TaskFamily.random(d=5, k=1, T=3, seed=0))
    0
    """
    family = _check_family(family)
    d = family.d
    P = []
    for U in family.U_star:
        Q = scipy.linalg.orth(U)
        P.append(np.eye(d) - Q @ Q.T)
    rows, cols = np.triu_indices(d)
    basis = np.zeros((rows.size, d, d))
    basis[np.arange(rows.size), rows, cols] = 1.0
    basis = basis + np.swapaxes(basis, 1, 2)
    images = np.concatenate([(p @ basis @ p).reshape(rows.size, -1) for p in P], axis=1)
    s = scipy.linalg.svdvals(images)
    # The basis and the projectors have unit scale, so the map's non-zero singular values are
    # O(1): an absolute floor also catches the all-round-off map of full-rank offsets (k = d).
    return int(rows.size - np.sum(s > KERNEL_RTOL * max(s[0], 1.0)))


def first_order_identifiable(family: TaskFamily) -> bool:
    """Whether :func:`first_order_kernel_dimension` is zero (the default recovery predictor)."""
    return first_order_kernel_dimension(family) == 0


def recovery_outcome(
    family: TaskFamily, n_starts: int = 2, seed: int | np.random.Generator | None = 0
) -> str:
    """Where the population LoRA-ML solvers end, with respect to ``A*``.

    Returns ``"recovered"``, ``"zero loss elsewhere"`` or ``"no global minimum found"``. Runs
    the exact solver (from SR) and ``n_starts`` L-BFGS runs from ``N(0, 1)`` starts; the
    zero-loss answers (objective <= ``ZERO_LOSS_RTOL`` times the value scale) decide: all at
    ``A*`` (relative error <= ``REACHED_RTOL``) is ``"recovered"``, any elsewhere is
    ``"zero loss elsewhere"``.
    """
    family = _check_family(family)
    rng = as_seed_generator(seed)
    d, T, k = family.d, family.T, family.k
    tol = ZERO_LOSS_RTOL * stationary.problem_scales(statistics(family))[1]
    fits = [fit_lora_ml(family, k, seed=rng)]
    for _ in range(check_int(n_starts, "n_starts", minimum=0)):
        A0, U0 = rng.standard_normal((d, d)), rng.standard_normal((T, d, k))
        fits.append(fit_lora_ml(family, k, method="lbfgs", A0=A0, U0=U0, max_iter=3000))
    errors = [base_error(f.A, family.A_star, relative=True) for f in fits if f.objective <= tol]
    if not errors:
        return "no global minimum found"
    return "recovered" if max(errors) <= REACHED_RTOL else "zero loss elsewhere"


def check_recovery_boundary(
    families: Sequence[TaskFamily], outcomes: Sequence[str],
    predictor: Callable[[TaskFamily], bool] = first_order_identifiable,
) -> CheckResult:
    """Informational: ``A*`` is recovered only where ``predictor`` says it can be.

    ``holds`` when no instance recovers ``A*`` without ``predictor`` (the predictor is
    necessary) and the instances cover both sides of the boundary, including a recovered one
    with ``kT > d`` (where column independence, Theorem 3's sufficient condition, cannot hold).
    Predicted instances may still have another, isolated, zero-loss minimum: the detail counts
    them. Column independence as the predictor is the control (docs/theory.md, section 6.2).

    Parameters
    ----------
    families : sequence of TaskFamily
    outcomes : sequence of str
        :func:`recovery_outcome` of each family.
    predictor : callable, default=first_order_identifiable
        Family -> whether recovery is possible.
    """
    if len(families) != len(outcomes):
        raise ValueError(f"families and outcomes differ in length: {len(families)} != {len(outcomes)}.")
    decided = [(f, o == "recovered", bool(predictor(f))) for f, o in zip(families, outcomes)
               if o != "no global minimum found"]
    wrong = [f"(d={f.d}, k={f.k}, T={f.T})" for f, rec, pred in decided if rec and not pred]
    n_rec = sum(rec for _, rec, _ in decided)
    wide = sum(rec and f.k * f.T > f.d for f, rec, _ in decided)
    outside = sum(not pred for _, _, pred in decided)
    isolated = sum(pred and not rec for _, rec, pred in decided)
    covered = n_rec > 0 and outside > 0 and wide > 0
    agree = (len(decided) - len(wrong)) / max(len(decided), 1)
    name = getattr(predictor, "__name__", "custom")
    head = (f"predictor {name}: recovered although not predicted on {', '.join(wrong)}" if wrong
            else f"predictor {name}: {n_rec} of {len(decided)} instances recovered A* "
            f"({wide} with kT > d), all predicted")
    res = make_result(
        "recovery-boundary", "A* is recovered only where it is first-order identifiable",
        "project (beyond Thm 3)", 1.0, agree, 1.0 - agree, 0.0, kind="info",
        holds=not wrong and covered,
        detail=f"{head}; {outside} not predicted, none recovered; {isolated} predicted but "
        f"with another zero-loss minimum found; {len(families) - len(decided)} inconclusive "
        "(no zero-loss point reached)",
    )
    return replace(res, instances=len(families))


# --------------------------------------------------------------------------- paper protocol
#: What a run of the paper protocol can end as (``"other: <kind>"`` for anything else).
PROTOCOL_OUTCOMES = (
    "reached A*", "converging to A*", "stalled at a spurious minimum",
    "heading to a spurious minimum", "zero loss elsewhere", "diverged",
)
#: Loss conventions the paper protocol's step sizes can refer to: the library's
#: (:data:`lowrank_theory.paper_protocol.CONVENTIONS`, see paper_protocol_runs).
PROTOCOL_CONVENTIONS = CONVENTIONS
#: The outcomes Theorem 3 and the landscape explain (the others make the info check fail).
EXPLAINED_OUTCOMES = PROTOCOL_OUTCOMES[:4]
#: L-BFGS iterations that continue the descent from an end point still moving after the rounds.
CONTINUATION_MAX_ITER = 3000


@dataclass(frozen=True)
class ProtocolRun:
    """One run of the paper protocol and what it ended as.

    Attributes
    ----------
    family : int
        Index of the family in the list given.
    start : str
        ``"paper"`` (``A0 = 0``, ``U0 ~ N(0, 0.1^2)``) or ``"normal"`` (``A0, U0 ~ N(0, 1)``).
    outcome : str
        ``"reached A*"`` (relative error <= ``REACHED_RTOL`` after the rounds);
        ``"stalled at a spurious minimum"`` (Newton steps from the end point reach a certified
        spurious local minimum); otherwise the descent is continued by L-BFGS from the end
        point and its limit is certified: ``"converging to A*"``, ``"heading to a spurious
        minimum"``, ``"zero loss elsewhere"`` (a global minimum with ``A != A*``); or
        ``"diverged"``, ``"other: <certificate kind>"``.
    base_error : float
        ``||A - A*||_F / ||A*||_F`` at the end of the rounds.
    objective : float
        Excess loss at the end of the rounds.
    """

    family: int
    start: str
    outcome: str
    base_error: float
    objective: float


def _stack_statistics(stats: Sequence[Statistics], repeats: int) -> Statistics:
    """One batch of statistics, each problem repeated ``repeats`` times (runs of one family)."""
    def rep(name: str) -> NDArray:
        return np.repeat(np.stack([getattr(s, name) for s in stats]), repeats, axis=0)

    return Statistics(rep("Sxx"), rep("Sxy"), rep("syy"), population=True,
                      identity_inputs=all(s.identity_inputs for s in stats))


def _certified_end(family: TaskFamily, A: NDArray, U: NDArray) -> tuple[str, NDArray]:
    """Newton-polish ``(A, U)`` and certify the stationary point reached."""
    A_p, fac, _ = stationary.polish_stationary_point(family, A, U)
    return stationary.certify_stationary_point(family, A_p, fac[0]).kind, A_p


def _classify_run(family: TaskFamily, A: NDArray, U: NDArray) -> str:
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(U))):
        return "diverged"
    if base_error(A, family.A_star, relative=True) <= REACHED_RTOL:
        return "reached A*"
    kind, _ = _certified_end(family, A, U)
    if kind == "spurious local minimum":
        return "stalled at a spurious minimum"
    # Still moving (slowly, along a flat valley): follow the descent further with L-BFGS and
    # certify where it ends, rather than pay for the tens of thousands of rounds it would take.
    fit = fit_lora_ml(family, family.k, method="lbfgs", A0=A, U0=U, max_iter=CONTINUATION_MAX_ITER)
    kind, A_end = _certified_end(family, fit.A, fit.U)
    if kind == "global minimum":
        at_truth = base_error(A_end, family.A_star, relative=True) <= REACHED_RTOL
        return "converging to A*" if at_truth else "zero loss elsewhere"
    if kind == "spurious local minimum":
        return "heading to a spurious minimum"
    return f"other: {kind}"


def paper_protocol_runs(
    families: Sequence[TaskFamily], n_paper: int = 2, n_normal: int = 2,
    rounds: int = PAPER_ROUNDS, seed: int | np.random.Generator | None = 0,
    convention: str = "paper",
) -> list[ProtocolRun]:
    """Run the paper's block-coordinate descent on population families and classify the ends.

    Every family gets ``n_paper`` starts of the paper (``A0 = 0``, ``U0`` with
    ``N(0, 0.1^2)`` entries) and ``n_normal`` starts with ``N(0, 1)`` entries in ``A0`` and
    ``U0``; all runs advance together, ``rounds`` rounds of
    :func:`~lowrank_theory.paper_protocol.paper_round` (10 steps of size 0.003 on every
    ``U_t``, then one step of size 0.03 on ``A``: the rounds of
    ``fit_lora_ml(method="paper")``). Each end point is classified (:class:`ProtocolRun`).

    Parameters
    ----------
    families : sequence of TaskFamily
        Same ``d``, ``k`` and ``T``.
    n_paper, n_normal : int
        Starts of each kind per family.
    rounds : int, default=3000
        The paper's number of rounds.
    seed : int, Generator or None
    convention : {"paper", "sum"}, default="paper"
        What the step sizes apply to (:mod:`lowrank_theory.paper_protocol`, docs/theory.md,
        section 3.3). ``"paper"``, the authors' script: each ``U_t`` steps on its own task's
        half squared error ``L_t / 2`` and ``A`` on the task average ``(1/T) sum_t L_t / 2``,
        so on ``F = sum_t L_t`` the U-steps are half and the A-step ``1 / (2T)`` of the
        nominal size. ``"sum"``: both step on ``F`` itself.

    Returns
    -------
    list of ProtocolRun
    """
    if not families:
        raise ValueError("families is empty: give at least one TaskFamily.")
    families = [_check_family(f, "families[i]") for f in families]
    shape = {(f.d, f.k, f.T) for f in families}
    if len(shape) != 1:
        raise ValueError(f"families must share (d, k, T) to run as one batch, got {sorted(shape)}.")
    (d, k, T), = shape
    n_paper = check_int(n_paper, "n_paper", minimum=0)
    n_normal = check_int(n_normal, "n_normal", minimum=0)
    rounds = check_int(rounds, "rounds", minimum=0)
    check_choice(convention, "convention", PROTOCOL_CONVENTIONS)
    rng = as_seed_generator(seed)
    per = n_paper + n_normal
    starts = (["paper"] * n_paper + ["normal"] * n_normal) * len(families)
    A = np.zeros((len(starts), d, d))
    U = np.empty((len(starts), T, d, k))
    for i, start in enumerate(starts):
        if start == "paper":
            U[i] = PAPER_INIT_SCALE * rng.standard_normal((T, d, k))
        else:
            A[i] = rng.standard_normal((d, d))
            U[i] = rng.standard_normal((T, d, k))
    stats = _stack_statistics([statistics(f) for f in families], per)
    adapter = SymmetricAdapter(k)
    factors = (U,)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(rounds):
            A, factors = paper_round(stats, adapter, A, factors, PAPER_INNER_STEPS,
                                     PAPER_LR_U, PAPER_LR_A, convention=convention)
    runs = []
    for i, start in enumerate(starts):
        fam = families[i // per]
        A_i, U_i = A[i], factors[0][i]
        finite = np.all(np.isfinite(A_i)) and np.all(np.isfinite(U_i))
        runs.append(ProtocolRun(
            i // per, start, _classify_run(fam, A_i, U_i),
            base_error(A_i, fam.A_star, relative=True) if finite else float("inf"),
            lora_ml_objective(fam, A_i, U_i) if finite else float("inf"),
        ))
    return runs


def check_recovery_paper_protocol(
    runs: Sequence[ProtocolRun], rounds: int = PAPER_ROUNDS, convention: str = "paper"
) -> CheckResult:
    """Informational: the paper protocol's runs all end at ``A*`` or at a certified spurious minimum.

    On instances that satisfy Theorem 3, a run that neither reaches (or is converging to)
    ``A*`` nor stalls at a certified spurious minimum would be unexplained: a zero-loss point
    elsewhere contradicts the theorem, a divergence or a saddle the protocol. The detail
    reports, per kind of start, how many runs reached ``A*`` to ``REACHED_RTOL`` within the
    rounds (with steps in ``convention``, see :func:`paper_protocol_runs`) and how many stalled
    at a spurious minimum (docs/theory.md, section 12.2).
    """
    if not runs:
        raise ValueError("runs is empty: nothing to report.")
    parts = []
    for start, label in (("paper", "A0=0, U0~N(0,0.1^2)"), ("normal", "A0, U0~N(0,1)")):
        sub = [r for r in runs if r.start == start]
        if not sub:
            continue
        counts = {o: sum(r.outcome == o for r in sub) for o in PROTOCOL_OUTCOMES}
        counts["other"] = len(sub) - sum(counts.values())
        rest = ", ".join(f"{n} {o}" for o, n in counts.items() if n and o != "reached A*")
        parts.append(f"{label}: {counts['reached A*']}/{len(sub)} reached A* within {rounds} "
                     f"rounds" + (f" ({rest})" if rest else ""))
    parts[0] = f"steps in the {convention} convention; " + parts[0]
    n_ok = sum(r.outcome in EXPLAINED_OUTCOMES for r in runs)
    frac = n_ok / len(runs)
    bad = sorted({r.outcome for r in runs if r.outcome not in EXPLAINED_OUTCOMES})
    res = make_result(
        "recovery-paper-protocol",
        "the paper's protocol ends at A* or at a certified spurious minimum (T >= 3, independent)",
        "protocol of the paper's experiments", 1.0, frac, 1.0 - frac, 0.0, kind="info",
        detail="; ".join(parts) + (f"; unexplained: {bad}" if bad else ""),
    )
    return replace(res, instances=len(runs))


# --------------------------------------------------------------------------- finite samples
def sample_scaling_errors(
    estimator: Callable[[TaskData], NDArray], target: Callable[[TaskFamily], NDArray], *,
    k: int = 1, base: tuple[int, int, int] = (4, 3, 1000),
    ns: Sequence[int] = (250, 1000, 4000, 16_000), ds: Sequence[int] = (4, 8, 16),
    Ts: Sequence[int] = (3, 6, 12), n_reps: int = 4,
    sigma: float = 0.1, seed: int | np.random.Generator | None = 0,
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Estimation errors ``||estimator(data) - target(family)||_F`` along three one-way sweeps.

    From ``base = (d, T, N)`` one of N, d and T varies at a time; each value is drawn
    ``n_reps`` times (``TaskFamily.random`` with ``sigma``, then ``N`` samples per task). In the
    N sweep each repetition keeps its family across N, so the slope sees the sampling error
    only.

    Returns
    -------
    dict
        ``{"N": (x, errors), "d": (...), "T": (...)}``, arrays of length ``n_reps * len(values)``.
    """
    rng = as_seed_generator(seed)
    d0, T0, N0 = base
    out: dict[str, tuple[NDArray, NDArray]] = {}
    for var, values in (("N", ns), ("d", ds), ("T", Ts)):
        xs, errs = [], []
        for _ in range(check_int(n_reps, "n_reps")):
            fam = TaskFamily.random(d=d0, k=k, T=T0, sigma=sigma, seed=rng) if var == "N" else None
            for v in values:
                if var == "d":
                    fam = TaskFamily.random(d=int(v), k=k, T=T0, sigma=sigma, seed=rng)
                elif var == "T":
                    fam = TaskFamily.random(d=d0, k=k, T=int(v), sigma=sigma, seed=rng)
                data = fam.sample(n=int(v) if var == "N" else N0, seed=rng)
                xs.append(float(v))
                errs.append(float(np.linalg.norm(estimator(data) - target(fam))))
        out[var] = (np.asarray(xs), np.asarray(errs))
    return out


def scaling_slope(x: ArrayLike, errors: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    """Least-squares slope of ``log(errors)`` on ``log(x)`` and the half-width of its t-interval."""
    import scipy.stats  # ~0.3 s to import, needed only here

    lx, le = np.log(np.asarray(x, float)), np.log(np.asarray(errors, float))
    fit = scipy.stats.linregress(lx, le)
    half = float(scipy.stats.t.ppf(0.5 + level / 2, lx.size - 2) * fit.stderr)
    return float(fit.slope), half


def check_sample_scaling(
    name: str, estimator_label: str,
    sweeps: Mapping[str, tuple[ArrayLike, ArrayLike]], expected: Mapping[str, float],
    tested: str = "N", tolerance: float = SCALING_SLOPE_TOL,
) -> CheckResult:
    """Informational: fitted log-log slopes of an estimation error in N, d and T.

    ``holds`` when the slope in ``tested`` (N) is within ``tolerance`` of ``expected[tested]``
    (-1/2, the parametric rate); the other slopes are reported with their 95% intervals next to
    the heuristic ``expected`` values, untested (docs/theory.md, section 11).
    """
    parts, measured = [], None
    for var, (x, err) in sweeps.items():
        slope, half = scaling_slope(x, err)
        ref = f" (heuristic {expected[var]:+.2f})" if var in expected else ""
        parts.append(f"{var}: slope {slope:+.2f} [95% interval {slope - half:+.2f}, "
                     f"{slope + half:+.2f}]{ref}")
        if var == tested:
            measured = slope
    if measured is None:
        raise ValueError(f"sweeps has no {tested!r} sweep to test.")
    pred = float(expected[tested])
    res = make_result(
        name, f"{estimator_label} error scales as N^(-1/2) in the samples per task",
        "project (no rate stated in the paper)", pred, measured, abs(measured - pred), tolerance,
        kind="info", detail=f"|{estimator_label}|_F: " + "; ".join(parts),
    )
    return replace(res, instances=sum(len(np.atleast_1d(x)) for x, _ in sweeps.values()))


def check_sample_scaling_lora_ml(
    sweeps: Mapping[str, tuple[ArrayLike, ArrayLike]]
) -> CheckResult:
    """Informational: LoRA-ML's ``|A^ - A*|_F`` (exact solver on N samples) falls as N^(-1/2).

    ``sweeps`` as returned by :func:`sample_scaling_errors` for the estimator
    ``fit_lora_ml(data, 1).A`` and the target ``A*`` (:func:`check_sample_scaling` with the
    heuristic slopes of :data:`SCALING_HEURISTIC`; docs/theory.md, section 11).
    """
    return check_sample_scaling("sample-scaling-lora-ml", "A^ - A*", sweeps, SCALING_HEURISTIC)


def check_sample_scaling_sr(sweeps: Mapping[str, tuple[ArrayLike, ArrayLike]]) -> CheckResult:
    """Informational: SR's ``|A_SR^ - A_SR|_F`` falls as N^(-1/2) (see :func:`check_sample_scaling_lora_ml`)."""
    return check_sample_scaling("sample-scaling-sr", "A_SR^ - A_SR", sweeps, SCALING_HEURISTIC)


# --------------------------------------------------------------------------- relaxation
def check_relaxation(
    source: Source, lam: float | None = None, k: int | None = None,
    seed: int | np.random.Generator | None = 0, *, expect_recovery: bool | None = None,
) -> CheckResult:
    """Informational: the trace relaxation against LoRA-ML, and its certified lower bound.

    Solves the relaxation with a small trace penalty (``RELAXATION_LAM`` times the offsets'
    scale by default) and reports its error on ``A*`` next to LoRA-ML's (``fit_lora_ml``);
    with ``lam = 0`` its value bounds the LoRA-ML objective from below, so the gap
    ``F(LoRA-ML) - bound`` certifies LoRA-ML's answer to within that gap of the global value.
    ``holds``: the bound is consistent (``bound <= F``) and, when recovery is expected, the
    relaxation recovers ``A*`` (docs/theory.md 12.3).

    Parameters
    ----------
    source : TaskFamily or TaskData
    lam : float, optional
    k : int, optional
    seed : int, Generator or None
    expect_recovery : bool, optional
        Default: expected for a population with ``T >= 3`` and independent offset columns.
        ``True`` on a family without them is the control.
    """
    from lowrank_theory import relaxation  # cvxpy is imported only when the relaxation runs

    _check_source(source)
    fam = source if isinstance(source, TaskFamily) else source.family
    if fam is None:
        raise ValueError("check_relaxation needs the ground truth: a TaskFamily or data sampled from one.")
    k = fam.k if k is None else k
    if expect_recovery is None:
        expect_recovery = (isinstance(source, TaskFamily) and fam.T >= 3
                           and offset_columns_independent(fam))
    if lam is None:
        lam = RELAXATION_LAM * float(np.mean(np.linalg.norm(fam.offsets, ord=2, axis=(1, 2))))
    relaxed = relaxation.trace_relaxation(source, lam)
    fit = fit_lora_ml(source, k, seed=seed)
    bound = relaxation.lora_ml_lower_bound(source)
    scale = problem_scale(fam)
    err_relax = float(np.linalg.norm(relaxed.A - fam.A_star)) / scale
    err_lora = float(np.linalg.norm(fit.A - fam.A_star)) / scale
    gap = fit.objective - bound
    recovers = err_relax <= RELAXATION_RECOVERY_RTOL
    tol = 1e-9 * max(1.0, abs(bound))
    return make_result(
        "relaxation", "convex trace relaxation: recovery of A* and a certified lower bound",
        "baseline (not in the paper)", bound, fit.objective, max(0.0, -gap), tol, kind="info",
        holds=gap >= -tol and (recovers or not expect_recovery),
        detail=f"{_source_label(source)}, T={fam.T}: |A_relax-A*|_F/scale={err_relax:.1e} "
        f"(recovers={recovers}, expected={expect_recovery}, ranks of D_t {relaxed.ranks.tolist()}), "
        f"|A_LoRA-ML-A*|_F/scale={err_lora:.1e}, F_LoRA-ML - bound={gap:.2e}",
    )

