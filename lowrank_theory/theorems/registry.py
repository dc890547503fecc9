"""The registry of checks: what each one claims, where, of which kind, on which instances.

Every entry of :data:`CHECKS` is a :class:`CheckSpec`: the check's kind and claim, the section
of docs/theory.md that states it, the :class:`~lowrank_theory.theorems.instances.InstanceSettings`
its runner draws from (what ``check --json`` reports), the solver used, what ``predicted`` and
``measured`` mean, and its negative control. :func:`run_checks` runs the checks,
:func:`run_controls` their controls (``tests/test_theorems_registry.py`` walks them all).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from lowrank_theory._validation import check_int

from .instances import (
    CONTROLS,
    RANDOM,
    RATE_CONFIGS,
    RUNNERS,
    SCALING_BASE,
    SCALING_SWEEPS,
    SWEEP_POINTS,
    InstanceSettings,
    stream,
)
from .result import CheckResult

__all__ = ["CheckSpec", "CHECKS", "run_checks", "run_controls"]

@dataclass(frozen=True)
class CheckSpec:
    """One entry of :data:`CHECKS`.

    Attributes
    ----------
    name : str
    kind : {"theorem", "consistency", "info"}
    claim : str
        One line, for the table.
    section : str
        Section of docs/theory.md.
    key : int
        Seed stream of the check (independent of the other checks').
    runner : callable
        ``(Generator, InstanceSettings) -> CheckResult``.
    settings : InstanceSettings
    solver : str
        The solver(s) behind the measured values.
    predicted, measured : str
        What the result's ``predicted`` and ``measured`` numbers mean.
    control : callable
        ``seed -> CheckResult`` that must not hold.
    control_note : str
        What the control breaks.
    """

    name: str
    kind: str
    claim: str
    section: str
    key: int
    runner: Callable[[np.random.Generator, InstanceSettings], CheckResult]
    settings: InstanceSettings
    solver: str
    predicted: str
    measured: str
    control: Callable[[int], CheckResult]
    control_note: str


_SR_NEW = InstanceSettings(RANDOM, (10, 10), (1, 1), (3, 3), 3, starts=1,
                           notes="one new task per family (U*_new with N(0, 1) entries)")
_SCALING = InstanceSettings(
    RANDOM, (4, 16), (1, 1), (3, 12), 4 * SWEEP_POINTS, samples=(250, 16_000),
    notes=f"one-way sweeps from (d, T, N) = {SCALING_BASE}: "
    f"N in {SCALING_SWEEPS['ns']}, d in {SCALING_SWEEPS['ds']}, T in {SCALING_SWEEPS['Ts']}; "
    f"families / {SWEEP_POINTS} per value; in the N sweep each family keeps its parameters")
_EXACT_LS = "closed form (scipy.linalg.solve) against numpy.linalg.lstsq"
_FT_EXACT = "fine_tune(method='exact'): Eckart-Young (population), reduced-rank regression (n samples)"
_LBFGS_STARTS = "fit_lora_ml(method='lbfgs') from N(0, 1) starts, Newton-polished"

def _spec(name: str, kind: str, claim: str, section: str, key: int, settings: InstanceSettings,
          solver: str, predicted: str, measured: str, control_note: str) -> CheckSpec:
    return CheckSpec(name, kind, claim, section, key, RUNNERS[name], settings, solver, predicted,
                     measured, CONTROLS[name], control_note)


_SPECS = (
    _spec("sr-global-minimum", "consistency", "SR closed form is the global minimiser", "4.1", 1,
              InstanceSettings(RANDOM, (2, 8), (1, 2), (1, 4), 6, (None, 10.0, 10.0),
                               samples=(10, 200), notes="each family also sampled once, N >= d + 2"),
              _EXACT_LS, "0 (gradient and mismatch)",
              "largest of |grad|/gradient scale and relative mismatch",
              "A_SR + 1e-3 N(0, 1) noise"),
    _spec("sr-rank", "theorem", "rank(A_SR - A*) = min(kT, d)", "4.2", 2, InstanceSettings(RANDOM, (2, 11), (1, 2), (1, 5), 10), "standard_retraining, svdvals",
              "min(kT, d)", "numerical rank of A_SR - A*",
              "collinear offsets (not generic)"),
    _spec("sr-floor", "theorem", "rank-k fine-tuning from A_SR keeps a positive floor", "4.3", 3,
              _SR_NEW, _FT_EXACT, "the floor: spectral tail of W*_new - A_SR beyond k",
              "population rank-k fine-tuning loss", "fine-tune from A* (floor vanishes)"),
    _spec("sr-floor-every-n", "consistency", "no n-sample fit goes below the floor", "4.3", 20,
              replace(_SR_NEW, samples=(100, 100_000)), _FT_EXACT,
              "the floor", "smallest loss over n", "adapter rank k + 1"),
    _spec("ft-sr-plateau", "theorem", "from A_SR the loss plateaus at the floor", "4.3", 4,
              replace(_SR_NEW, samples=(100, 100_000)), _FT_EXACT,
              "1 (loss / floor at n = 1e5)", "loss / floor at n = 1e5",
              "fine-tune from A* (loss falls as 1/n)"),
    _spec("sr-adapt-rank", "theorem", "from A_SR rank k(T+1) reaches, k(T+1)-1 does not", "4.4",
              21, InstanceSettings(RANDOM, (4, 12), (1, 2), (1, 4), 6, starts=1,
                               notes="d >= k(T+1); one new task per family"),
              _FT_EXACT, "0 (rank-k(T+1) loss)", "rank-k(T+1) population loss",
              "fine-tune from A* (rank k suffices)"),
    _spec("truth-global", "consistency", "the truth is a global minimum, zero excess loss", "5.1",
              5, InstanceSettings(RANDOM, (2, 8), (1, 8), (1, 4), 10, (None, 10.0),
                                              notes="k <= d"),
              "lora_ml_objective, lora_ml_gradient", "0", "F at the truth",
              "A* + 1e-3 N(0, 1) noise"),
    _spec("rotation-invariance", "consistency", "F invariant under U_t -> U_t Q_t", "5.2", 6,
              InstanceSettings(RANDOM, (2, 7), (1, 7), (1, 3), 10, samples=(50, 50),
                               notes="adapter rank r uniform in 1..d; each family also sampled"),
              "lora_ml_objective at a random point", "0", "relative change of F",
              "Q_t = 1.001 x orthogonal"),
    _spec("rank-2k", "consistency", "global minima have rank(A^ - A*) <= 2k", "5.3", 8,
              InstanceSettings(RANDOM, (3, 6), (1, 2), (1, 4), 8, (None, None, 10.0), starts=3,
                               notes="T cycles 1..4; plus families/3 hyperbolic minima (d=5, k=2, T=2)"),
              _LBFGS_STARTS, "2k (rank bound)", "numerical rank of A^ - A*",
              "adapters of rank 2 > k = 1"),
    _spec("recovery-t3", "theorem", "T >= 3, independent offsets: exact recovery", "6.1", 9,
              InstanceSettings(RANDOM, (3, 10), (1, 2), (3, 4), 8, (None, None, None, 10.0),
                               starts=2, notes="d = kT + {0, 1, 2}; T and k cycle"),
              "fit_lora_ml (exact, from SR) and " + _LBFGS_STARTS,
              "0", "max of |A^-A*|_F/scale and offset errors/scale",
              "d = 2, T = 3 offsets (columns dependent)"),
    _spec("recovery-paper-protocol", "info", "paper protocol ends at A* or a spurious minimum",
              "12.2", 23, InstanceSettings(RANDOM, (3, 3), (1, 1), (3, 3), 8, starts=4,
                               notes="per family 2 paper starts (A0 = 0, U0 ~ N(0, 0.1^2)) and 2 "
                               "N(0, 1) starts; 3000 rounds; steps 0.003 on each U_t's own half "
                               "squared error L_t / 2, 0.03 on A's task average of L_t / 2 "
                               "(the authors' script)"),
              "paper_round x 3000 (fit_lora_ml(method='paper')); end points Newton-polished or "
              "continued by L-BFGS, then certified",
              "1 (all runs explained)", "fraction of runs at A* or a certified spurious minimum",
              "collinear offsets (a continuum of minima)"),
    _spec("recovery-boundary", "info", "recovery only where first-order identifiable", "6.2",
              24,
              InstanceSettings(RANDOM, (3, 6), (1, 5), (2, 5), 8, starts=2,
                               notes="k uniform in 1..d-1; plus (d, k, T) = (3, 1, 4), (4, 2, 4)"),
              "fit_lora_ml (exact) and fit_lora_ml(method='lbfgs') from N(0, 1) starts",
              "1 (no recovery outside the predictor)",
              "fraction of instances consistent with the predictor",
              "column independence as the predictor"),
    _spec("independence-needed", "info", "without independence, recovery fails", "6.2", 10,
              InstanceSettings("independence_counterexample (d=2) and collinear_family (d=4)",
                               (2, 4), (1, 1), (3, 3), 6,
                               notes="r ~ U(0.2, 0.7); collinear offsets c_t q q^T, c_t ~ U(0.5, 2)"),
              "closed-form constructions", "0 (F of the counterexample)", "|A^-A*|_F/scale",
              "the truth itself (A^ = A*)"),
    _spec("spurious-minima", "theorem", "T >= 3: certified spurious local minima exist", "6.3",
              16, InstanceSettings(RANDOM, (3, 3), (1, 1), (3, 3), 40, starts=4,
                                                  notes="plus the catalogued instance (seed 17)"),
              _LBFGS_STARTS + ", certified", "> 0 (lambda_min(H)/|H| modulo symmetry)",
              "lambda_min(H)/|H| modulo symmetry", "the truth (a global minimum)"),
    _spec("t2-hyperbolic", "consistency", "T = 2 hyperbolic family of zero-loss minima", "7.1",
              11, InstanceSettings(RANDOM, (2, 8), (1, 2), (2, 2), 8,
                                                    notes="k = 2 for half of d >= 4"),
              "closed form", "0 (F)", "F at the constructed minimum", "rapidity s = 0"),
    _spec("t2-strict-saddle", "theorem", "T = 2: non-global stationary points are strict saddles",
              "7.2", 12, InstanceSettings(RANDOM, (3, 4), (1, 2), (2, 2), 4, starts=6,
                               notes="(d, k) alternates (3, 1), (4, 2); (A_SR, 0) and U_s = 0 faces "
                               "plus zeros of |grad F|^2 from 6 starts"),
              "stationary.find_stationary_points, polished; dense Hessian",
              "< 0 (lambda_min(H)/|H|)", "largest lambda_min(H)/|H| over non-global points",
              "T = 3 instance with a spurious minimum"),
    _spec("t2-gradient-global", "theorem", "T = 2: random starts reach a global minimum", "7.2",
              13, InstanceSettings(RANDOM, (2, 6), (1, 2), (2, 2), 6, starts=4), _LBFGS_STARTS,
              "0", "fraction of starts not at zero loss", "T = 3 instance with a spurious minimum"),
    _spec("t2-rank-3k", "consistency", "T = 2: rank 3k reaches the new task, 3k-1 does not", "7.3",
              14, InstanceSettings(RANDOM, (4, 11), (1, 2), (2, 2), 6,
                                                 notes="d > 3k; from hyperbolic minima"),
              _FT_EXACT, "0 (rank-3k loss)", "rank-3k population loss",
              "from A* (rank k suffices)"),
    _spec("t1-nonidentifiable", "consistency", "T = 1: A is not identified", "8", 15, InstanceSettings(RANDOM, (2, 8), (1, 8), (1, 1), 6, starts=5,
                               notes="k <= d; 5 constructed minima per family"),
              "closed form", "0 (F)", "largest F over the constructed minima",
              "two copies of the truth"),
    _spec("zero-saddle", "theorem", "(A_SR, 0) is a strict saddle (T >= 2)", "9", 7,
              InstanceSettings(RANDOM, (2, 7), (1, 1), (2, 4), 6, samples=(100, 100),
                               notes="adapter rank r uniform in 1..d; each family also sampled"),
              "dense Hessian", "-4 max_t lambda_max(M_t - mean M), over |H|",
              "lambda_min(H)/|H|", "T = 2 with equal offsets"),
    _spec("zero-t1-global", "consistency", "(A_SR, 0) is a global minimum (T = 1)", "9", 22,
              InstanceSettings(RANDOM, (2, 7), (1, 3), (1, 1), 6),
              "certify_stationary_point", "0 (F)", "F at (A_SR, 0)",
              "A_SR + 1e-3 N(0, 1) noise"),
    _spec("ft-rate", "theorem", "from A*: excess ~ k d sigma^2 / n", "10", 17, InstanceSettings(RANDOM, (5, 20), (1, 2), (1, 1), 4, samples=(100, 10_000),
                               notes=f"(d, k) in {RATE_CONFIGS[:4]}; n in {{100, 300, 1000, "
                               "3000, 10000}; 20 new tasks per n"),
              "fine_tune(method='exact'): reduced-rank regression", "-1 (log-log slope in n)",
              "fitted slope", "base A* + E, |E|_F = 1"),
    _spec("sample-scaling-lora-ml", "info", "LoRA-ML's |A^ - A*| ~ N^(-1/2)", "11", 25,
              _SCALING, "fit_lora_ml (exact) on N samples per task",
              "-1/2 (log-log slope in N)", "fitted slope in N",
              "a stub that uses only the first 2d + 2 samples"),
    _spec("sample-scaling-sr", "info", "SR's |A_SR^ - A_SR| ~ N^(-1/2)", "11", 26,
              replace(_SCALING, families=8 * SWEEP_POINTS),
              "standard_retraining on N samples per task, against the population's",
              "-1/2 (log-log slope in N)", "fitted slope in N",
              "a stub that uses only the first 2d + 2 samples"),
    _spec("relaxation", "info", "convex trace relaxation vs LoRA-ML", "12.3", 18, InstanceSettings(RANDOM, (6, 6), (1, 1), (2, 3), 3, samples=(300, 300),
                               notes="per 3 families: T = 3 population, a sample of it, T = 2"),
              "cvxpy (trace relaxation) and fit_lora_ml (exact)",
              "lower bound (relaxation, lam = 0)", "F of LoRA-ML",
              "collinear offsets (c = 1, 2, 3) with recovery expected"),
    _spec("hessian-exact", "consistency", "exact Hessian vs Taylor remainders and Lanczos", "14",
              19, InstanceSettings(RANDOM, (2, 5), (1, 1), (1, 3), 6, (None, 5.0), samples=(40, 40),
                               notes="adapter rank r in 1..d; every third asymmetric"),
              "landscape.lora_ml_hvp, dense eigh and Lanczos (ARPACK)",
              "4 (second-order remainder slope)", "measured slope",
              "Hessian-vector product scaled by 1.05"),
)

#: name -> :class:`CheckSpec`, in the order of docs/theory.md.
CHECKS: dict[str, CheckSpec] = {spec.name: spec for spec in _SPECS}


def _names(only: Sequence[str] | None) -> list[str]:
    names = list(CHECKS) if not only else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; valid names: {', '.join(CHECKS)}.")
    return names


def _named(spec: CheckSpec, res: CheckResult) -> CheckResult:
    if res.kind != spec.kind:
        raise RuntimeError(f"{spec.name}: the check reported kind {res.kind!r}, the registry "
                           f"says {spec.kind!r}; make the two agree.")
    return replace(res, name=spec.name)


def run_checks(
    seed: int = 0, only: Sequence[str] | None = None, thorough: bool = False,
    progress: Callable[[CheckResult, float], None] | None = None,
) -> list[CheckResult]:
    """Run the checks on fresh instances drawn from ``seed``.

    Parameters
    ----------
    seed : int, default=0
        Base seed; each check draws from its own stream, so a subset reproduces the same
        instances as the full run.
    only : sequence of str, optional
        Names from :data:`CHECKS` (default: all).
    thorough : bool, default=False
        Five times as many families.
    progress : callable, optional
        Called with each result and its wall time as it finishes.

    Returns
    -------
    list of CheckResult

    Raises
    ------
    ValueError
        Unknown check name (the message lists the valid ones).
    """
    seed = check_int(seed, "seed", minimum=0)
    scale = 5 if thorough else 1
    results = []
    for name in _names(only):
        spec = CHECKS[name]
        start = time.perf_counter()
        res = _named(spec, spec.runner(stream(seed, spec.key), spec.settings.scaled(scale)))
        results.append(res)
        if progress is not None:
            progress(res, time.perf_counter() - start)
    return results


def run_controls(
    seed: int = 0, only: Sequence[str] | None = None,
    progress: Callable[[CheckResult, float], None] | None = None,
) -> list[CheckResult]:
    """Run each check's negative control; every one of them should report failure.

    Returns
    -------
    list of CheckResult
        One per check, named after it; ``holds`` True means the control did *not* fail
        (the check could not tell the broken instance from a good one).
    """
    seed = check_int(seed, "seed", minimum=0)
    results = []
    for name in _names(only):
        spec = CHECKS[name]
        start = time.perf_counter()
        res = _named(spec, spec.control(seed))
        results.append(res)
        if progress is not None:
            progress(res, time.perf_counter() - start)
    return results
