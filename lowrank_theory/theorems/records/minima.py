"""Records of the checks on LoRA-ML's global minima (docs/theory.md, sections 5, 6 and 8)."""

from __future__ import annotations

import numpy as np

from lowrank_theory import stationary
from lowrank_theory.lora_ml import fit_lora_ml, lora_ml_objective
from lowrank_theory.tasks import TaskFamily

from .. import empirical as em
from .. import global_minima as gm
from ..constructions import (
    collinear_minimum,
    global_minima_from_random_starts,
    hyperbolic_minimum,
    independence_counterexample,
    offset_columns_independent,
    t1_minima,
)
from ..instances import (
    RANDOM,
    InstanceSettings,
    PerTask,
    collinear_family,
    control_family,
    draw,
    draw_family,
    draw_samples,
    perturb,
    random_covariance,
    stream,
)
from ..record import Check, requires, vacuous
from ..result import aggregate, objective_tolerance

__all__ = ["RECORDS"]

_LBFGS_STARTS = "fit_lora_ml(method='lbfgs') from N(0, 1) starts, Newton-polished"
_T3 = (lambda f: f.T >= 3, "needs T >= 3")
_INDEPENDENT = (offset_columns_independent, "needs linearly independent offset columns (kT <= d)")


def _truth(fam, rng, s):
    return gm.check_truth_global(fam)


def _c_truth(seed):
    rng, fam = control_family(seed, d=4, k=1, T=3)
    return gm.check_truth_global(fam, A=perturb(fam.A_star, rng))


def _rotation(fam, rng, s):
    r = int(rng.integers(1, fam.d + 1))
    data = fam.sample(n=draw_samples(rng, s, fam.d), seed=rng)
    return aggregate([gm.check_rotation_invariance(fam, rank=r, seed=rng),
                      gm.check_rotation_invariance(data, rank=r, seed=rng)])


def _c_rotation(seed):
    rng, fam = control_family(seed, d=4, k=1, T=3)
    Q = 1.001 * np.stack([np.linalg.qr(rng.standard_normal((2, 2)))[0] for _ in range(3)])
    return gm.check_rotation_invariance(fam, rank=2, seed=rng, Q=Q)


def _known_minima(fam: TaskFamily, rng: np.random.Generator) -> list:
    """Global minima known in closed form: T = 1 constructions, the T = 2 hyperbolic family."""
    if fam.T == 1:
        return t1_minima(fam, 2, rng)
    if fam.T == 2:
        return [hyperbolic_minimum(fam, rng.uniform(-1, 1, fam.k))]
    return []


def _rank_2k(fam, rng, s):
    minima, _ = global_minima_from_random_starts(fam, fam.k, s.starts, rng)
    minima += _known_minima(fam, rng)
    if not minima:
        return vacuous("rank-2k", "consistency", "no global minimum reached")
    return aggregate([gm.check_rank_2k(fam, A, U) for A, U in minima])


def _rank_2k_family(rng, s, i):
    return draw_family(rng, s, i, T=s.T[0] + i % (s.T[1] - s.T[0] + 1))


def _c_rank_2k(seed):
    # Adapters of rank 2 > k = 1: a T = 1 minimum A^ = W*_1 - V V^T has rank(A^ - A*) = 3.
    rng, fam = control_family(seed, d=5, k=1, T=1)
    V = rng.standard_normal((1, 5, 2))
    return gm.check_rank_2k(fam, fam.W_star[0] - V[0] @ V[0].T, V, enforce_assumptions=False)


def _recovery_runs(check, name):
    """Global minima from the exact solver (polished) and from random starts, each checked."""

    def on_family(fam, rng, s):
        fit = fit_lora_ml(fam, fam.k, seed=rng)
        A, fac, _ = stationary.polish_stationary_point(fam, fit.A, fit.U)
        minima, other = global_minima_from_random_starts(fam, fam.k, s.starts, rng)
        if lora_ml_objective(fam, A, fac[0]) <= objective_tolerance(fam):
            minima.append((A, fac[0]))
        else:
            other += 1
        note = f"{other} runs ended at non-global points (outside the claim)"
        if not minima:
            return vacuous(name, "theorem", note)
        return aggregate([check(fam, A, U) for A, U in minima], note)

    return on_family


def _recovery_family(rng, s, i):
    T, k = s.T[0] + i % 2, s.k[0] + (i // 2) % 2
    return draw_family(rng, s, i, d=k * T + int(rng.integers(0, 3)), k=k, T=T)


def _c_recovery(seed):
    fam, A_hat, U_hat = independence_counterexample(r=float(stream(seed, 1000).uniform(0.2, 0.7)))
    return gm.check_recovery_t3(fam, A_hat, U_hat, enforce_assumptions=False)


def _c_recovery_sigma(seed):
    # The d = 2 counterexample has zero loss under any input covariance.
    rng = stream(seed, 1000)
    fam, A_hat, U_hat = independence_counterexample(r=float(rng.uniform(0.2, 0.7)))
    fam = TaskFamily(fam.A_star, fam.U_star, fam.sigma, random_covariance(2, 100.0, rng))
    return gm.check_recovery_general_covariance(fam, A_hat, U_hat, enforce_assumptions=False)


def _independence(rng, s):
    out = []
    for _ in range(max(1, s.families // 2)):
        r = float(rng.uniform(0.2, 0.7))
        out.append(gm.check_independence_needed(*independence_counterexample(r=r)))
    for i in range(max(1, s.families // 2)):
        fam = collinear_family(rng, d=s.d[1], T=3)
        cond = s.covariances[i % len(s.covariances)]
        if cond is not None:  # zero loss whatever the covariance: A^ + U^_t U^_t^T = W*_t
            fam = TaskFamily(fam.A_star, fam.U_star, fam.sigma, random_covariance(fam.d, cond, rng))
        out.append(gm.check_independence_needed(fam, *collinear_minimum(fam)))
    return aggregate(out, "d=2 three-vector construction and collinear offsets")


def _c_independence(seed):
    # Near miss: collinear offsets moved off collinearity by 1e-3 (columns now independent),
    # with the collinear family's minimum kept: it no longer has zero loss.
    rng = stream(seed, 1000)
    fam = collinear_family(rng, d=4, T=3)
    A_hat, U_hat = collinear_minimum(fam)
    moved = TaskFamily(fam.A_star, perturb(fam.U_star, rng), fam.sigma)
    return gm.check_independence_needed(moved, A_hat, U_hat)


def _t1(fam, rng, s):
    return gm.check_t1_nonidentifiable(fam, s.starts, seed=rng)


def _c_t1(seed):
    # Near miss: W*_1 - P with P = V V^T - 1e-3 w w^T, indefinite in one direction (U = V).
    rng, fam = control_family(seed, d=4, k=1, T=1)
    points = t1_minima(fam, 2, rng)
    w = rng.standard_normal(fam.d)
    A_bad = points[1][0] + 1e-3 * np.outer(w, w) / (w @ w)
    return gm.check_t1_nonidentifiable(fam, points=[points[0], (A_bad, points[1][1])])


def _boundary(rng, s):
    families, outcomes = [], []
    for i in range(s.families):
        d = draw(rng, s.d)
        fam = draw_family(rng, s, i, d=d, k=int(rng.integers(1, d)))
        families.append(fam)
        outcomes.append(em.recovery_outcome(fam, n_starts=s.starts, seed=rng))
    # Two instances with kT > d that are first-order identifiable, so both sides are covered.
    for d, k, T in ((3, 1, 4), (4, 2, 4)):
        fam = TaskFamily.random(d=d, k=k, T=T, seed=rng)
        families.append(fam)
        outcomes.append(em.recovery_outcome(fam, n_starts=s.starts, seed=rng))
    return em.check_recovery_boundary(families, outcomes)


def _c_boundary(seed):
    rng = stream(seed, 1000)
    families = [TaskFamily.random(d=d, k=k, T=T, seed=rng)
                for d, k, T in ((3, 1, 4), (4, 2, 4), (4, 1, 2), (4, 1, 3))]
    outcomes = [em.recovery_outcome(f, n_starts=1, seed=rng) for f in families]
    return em.check_recovery_boundary(families, outcomes, predictor=offset_columns_independent)


RECORDS = (
    Check(
        "truth-global", "consistency", "the truth is a global minimum, zero excess loss",
        "setup of Thm 2", "5.1", 5,
        InstanceSettings(RANDOM, (2, 8), (1, 8), (1, 4), 10, (None, 100.0, PerTask(100.0)),
                         notes="k <= d"),
        gm.check_truth_global, _c_truth, "A* + 1e-3 N(0, 1) noise",
        "lora_ml_objective, lora_ml_gradient", "0", "F at the truth", on_family=_truth),
    Check(
        "rotation-invariance", "consistency", "F invariant under U_t -> U_t Q_t",
        "setup of Thm 2", "5.2", 6,
        InstanceSettings(RANDOM, (2, 7), (1, 7), (1, 3), 10, (None, 100.0), samples=(50, 50),
                         notes="adapter rank r uniform in 1..d; each family also sampled"),
        gm.check_rotation_invariance, _c_rotation, "Q_t = 1.001 x orthogonal",
        "lora_ml_objective at a random point", "0", "relative change of F", on_family=_rotation),
    Check(
        "rank-2k", "consistency", "global minima have rank(A^ - A*) <= 2k", "Thm 2", "5.3", 8,
        InstanceSettings(RANDOM, (3, 6), (1, 2), (1, 4), 8, (None, 100.0, PerTask(100.0)),
                         starts=3, notes="T cycles 1..4; with the closed-form minima of T = 1 "
                         "and T = 2 (hyperbolic)"),
        gm.check_rank_2k, _c_rank_2k, "adapters of rank 2 > k = 1", _LBFGS_STARTS,
        "2k (rank bound)", "numerical rank of A^ - A*", on_family=_rank_2k,
        generate=_rank_2k_family),
    Check(
        "recovery-t3", "theorem", "T >= 3, independent offsets: exact recovery", "Thm 3", "6.1", 9,
        InstanceSettings(RANDOM, (3, 10), (1, 2), (3, 4), 8, starts=2,
                         notes="d = kT + {0, 1, 2}; T and k cycle"),
        gm.check_recovery_t3, _c_recovery, "d = 2, T = 3 offsets (columns dependent)",
        "fit_lora_ml (exact, from SR) and " + _LBFGS_STARTS,
        "0", "max of |A^-A*|_F/scale and offset errors/scale",
        on_family=_recovery_runs(gm.check_recovery_t3, "recovery-t3"), generate=_recovery_family,
        applies=requires(_T3, _INDEPENDENT)),
    Check(
        "recovery-general-covariance", "theorem",
        "T >= 3, independent offsets, any SPD covariance: exact recovery", "Thm 3 (any Sigma)",
        "6.1", 28,
        InstanceSettings(RANDOM, (3, 8), (1, 2), (3, 4), 6, (10.0, 100.0, PerTask(100.0)),
                         starts=2, notes="d = kT + {0, 1, 2}; T and k cycle"),
        gm.check_recovery_general_covariance, _c_recovery_sigma,
        "the d = 2 counterexample with Sigma of condition 100 (columns dependent)",
        "fit_lora_ml (exact, general path) and " + _LBFGS_STARTS,
        "0", "max of |A^-A*|_F/scale and offset errors/scale",
        on_family=_recovery_runs(gm.check_recovery_general_covariance,
                                 "recovery-general-covariance"),
        generate=_recovery_family,
        applies=requires(_T3, _INDEPENDENT, (lambda f: not f.isotropic,
                                             "needs a non-identity covariance (Sigma = I is "
                                             "recovery-t3)"))),
    Check(
        "recovery-boundary", "info", "recovery only where first-order identifiable",
        "project (beyond Thm 3)", "6.2", 24,
        InstanceSettings(RANDOM, (3, 6), (1, 5), (2, 5), 8, starts=2,
                         notes="k uniform in 1..d-1; plus (d, k, T) = (3, 1, 4), (4, 2, 4)"),
        em.check_recovery_boundary, _c_boundary, "column independence as the predictor",
        "fit_lora_ml (exact) and fit_lora_ml(method='lbfgs') from N(0, 1) starts",
        "1 (no recovery outside the predictor)",
        "fraction of instances consistent with the predictor", run=_boundary,
        own_instances="needs instances on both sides of the boundary", covariance="identity: "
        "the zero-loss set does not depend on Sigma; the instances are the paper's"),
    Check(
        "independence-needed", "info", "without independence, recovery fails",
        "condition of Thm 3", "6.2", 10,
        InstanceSettings("independence_counterexample (d=2) and collinear_family (d=4)",
                         (2, 4), (1, 1), (3, 3), 6, (None, 100.0),
                         notes="r ~ U(0.2, 0.7); collinear offsets c_t q q^T, c_t ~ U(0.5, 2)"),
        gm.check_independence_needed, _c_independence,
        "collinear offsets moved off collinearity by 1e-3, collinear minimum kept",
        "closed-form constructions", "0 (F of the counterexample)", "|A^-A*|_F/scale",
        run=_independence, own_instances="builds its counterexamples in closed form"),
    Check(
        "t1-nonidentifiable", "consistency", "T = 1: A is not identified", "setup", "8", 15,
        InstanceSettings(RANDOM, (2, 8), (1, 8), (1, 1), 6, (None, 100.0), starts=5,
                         notes="k <= d; 5 constructed minima per family"),
        gm.check_t1_nonidentifiable, _c_t1,
        "one point W*_1 - P with P indefinite by 1e-3 in one direction", "closed form",
        "0 (F)", "largest F over the constructed minima", on_family=_t1,
        applies=requires((lambda f: f.T == 1, "needs T = 1"))),
)
