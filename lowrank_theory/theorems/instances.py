"""How each check draws its instances, and the negative control it must fail.

:class:`InstanceSettings` describe the instances (ranges of d, k and T, covariances, number of
families and starts, samples); :data:`RUNNERS` maps each check's name to the function that draws
them from a seed stream and runs the check, :data:`CONTROLS` to its negative control -- a
perturbed instance, a violated assumption, or a stub answer -- on which the same check must
report failure (scikit-learn's check-the-checker pattern). The registry
(:mod:`lowrank_theory.theorems.registry`) pairs both with the check's kind, claim and settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from numpy.typing import NDArray

from lowrank_theory import landscape, stationary
from lowrank_theory._validation import check_int
from lowrank_theory.lora_ml import fit_lora_ml, lora_ml_objective
from lowrank_theory.retraining import standard_retraining
from lowrank_theory.tasks import TaskData, TaskFamily

from . import checks as ck
from . import empirical as em
from . import retraining_checks as rc
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
)
from .result import MARGIN_CAP, CheckResult, aggregate, objective_tolerance

__all__ = [
    "InstanceSettings",
    "RUNNERS",
    "CONTROLS",
    "random_covariance",
    "draw_family",
    "collinear_family",
    "stream",
]


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class InstanceSettings:
    """The instances a check draws (per unit of ``scale``; ``--thorough`` multiplies ``families``).

    Attributes
    ----------
    generator : str
        How a family is drawn.
    d, k, T : tuple of int
        Inclusive ranges (``k`` is capped at ``d``).
    families : int
        Families drawn.
    covariances : tuple of (float or None)
        Input covariances, cycled over the families: None is the identity, a number the
        condition number of a random SPD covariance (:func:`random_covariance`).
    starts : int
        Random starts (or constructed points) per family, when the check uses any.
    samples : tuple of int, optional
        Range of samples per task when finite samples are drawn.
    notes : str
        Relations between the parameters that the ranges do not show.
    """

    generator: str
    d: tuple[int, int]
    k: tuple[int, int]
    T: tuple[int, int]
    families: int
    covariances: tuple[float | None, ...] = (None,)
    starts: int = 0
    samples: tuple[int, int] | None = None
    notes: str = ""

    def scaled(self, scale: int) -> InstanceSettings:
        """The settings with ``scale`` times as many families."""
        return replace(self, families=self.families * check_int(scale, "scale", minimum=0))

    def to_dict(self) -> dict:
        """JSON-ready: ranges as ``[low, high]``, covariances in words."""
        out = asdict(self)
        for key in ("d", "k", "T", "samples"):
            out[key] = None if out[key] is None else list(out[key])
        out["covariances"] = ["identity" if c is None else f"random SPD, condition {c:g}"
                              for c in self.covariances]
        out["samples_per_task"] = out.pop("samples")
        return out


def random_covariance(d: int, cond: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """``Q diag(geomspace(1, cond, d)) Q^T`` with a Haar-random orthogonal ``Q``."""
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return (Q * np.geomspace(1.0, cond, d)) @ Q.T


def _draw(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def draw_family(
    rng: np.random.Generator, s: InstanceSettings, i: int = 0, *, d: int | None = None,
    k: int | None = None, T: int | None = None,
) -> TaskFamily:
    """Family ``i`` of settings ``s``, a ``TaskFamily.random``.

    Dimensions are drawn from the ranges (or given), ``k <= d``, and the covariance is the
    ``i``-th of the cycle.
    """
    d = _draw(rng, s.d) if d is None else d
    k = min(_draw(rng, s.k) if k is None else k, d)
    T = _draw(rng, s.T) if T is None else T
    cond = s.covariances[i % len(s.covariances)]
    Sigma = None if cond is None else random_covariance(d, cond, rng)
    return TaskFamily.random(d=d, k=k, T=T, seed=rng, Sigma=Sigma)


def _samples(rng: np.random.Generator, s: InstanceSettings, d: int) -> int:
    return max(_draw(rng, s.samples), d + 2)


RANDOM = "TaskFamily.random: A* = (G + G^T)/2, U*_t with N(0, 1) entries, sigma = 0.1"


# --------------------------------------------------------------------------- runners: SR
def _run_sr_global(rng, s):
    out = []
    for i in range(s.families):
        fam = draw_family(rng, s, i)
        out.append(rc.check_sr_global_minimum(fam))
        out.append(rc.check_sr_global_minimum(fam.sample(n=_samples(rng, s, fam.d), seed=rng)))
    return aggregate(out)


def _run_sr_rank(rng, s):
    return aggregate([rc.check_sr_rank(draw_family(rng, s, i)) for i in range(s.families)])


def _sr_pairs(rng, s):
    for i in range(s.families):
        fam = draw_family(rng, s, i)
        yield fam, fam.new_task(seed=rng)


def _run_sr_floor(rng, s):
    return aggregate([rc.check_sr_floor(fam, new) for fam, new in _sr_pairs(rng, s)])


def _run_sr_floor_every_n(rng, s):
    out = [rc.check_sr_floor_every_n(fam, new, seed=rng) for fam, new in _sr_pairs(rng, s)]
    return aggregate(out, "n = 1e2..1e5")


def _run_sr_plateau(rng, s):
    return aggregate([rc.check_sr_plateau(fam, new, seed=rng) for fam, new in _sr_pairs(rng, s)])


def _run_sr_adapt_rank(rng, s):
    out = []
    for i in range(s.families):
        k, T = _draw(rng, s.k), _draw(rng, s.T)
        d = int(rng.integers(max(k * (T + 1), s.d[0]), s.d[1] + 1))
        fam = draw_family(rng, s, i, d=d, k=k, T=T)
        out.append(rc.check_sr_adaptation_rank(fam, fam.new_task(seed=rng)))
    return aggregate(out)


#: (d, k) of the fine-tuning-rate check, the first four at scale 1.
RATE_CONFIGS = ((5, 1), (10, 1), (10, 2), (20, 1), (20, 3), (40, 2))


def _run_rate(rng, s):
    configs = RATE_CONFIGS[: min(s.families, len(RATE_CONFIGS))]
    n_seeds = 20 * max(1, s.families // 4)
    out = [rc.check_fine_tuning_rate(d, k, n_seeds=n_seeds, seed=rng) for d, k in configs]
    lo, hi = rc.RATE_CONSTANT_BAND
    head = f"n = 100..10000, {n_seeds} new tasks per n, constant band [{lo}, {hi}]; "
    return replace(aggregate(out), detail=head + "; ".join(r.detail for r in out))


# --------------------------------------------------------------------------- runners: LoRA-ML minima
def _run_truth(rng, s):
    return aggregate([ck.check_truth_global_minimum(draw_family(rng, s, i))
                      for i in range(s.families)])


def _run_rotation(rng, s):
    out = []
    for i in range(s.families):
        fam = draw_family(rng, s, i)
        r = int(rng.integers(1, fam.d + 1))
        out.append(ck.check_rotation_invariance(fam, rank=r, seed=rng))
        out.append(ck.check_rotation_invariance(fam.sample(n=_samples(rng, s, fam.d), seed=rng),
                                                rank=r, seed=rng))
    return aggregate(out)


def _run_zero_saddle(rng, s):
    out = []
    for i in range(s.families):
        fam = draw_family(rng, s, i)
        out.append(ck.check_zero_saddle(fam, rank=int(rng.integers(1, fam.d + 1))))
        out.append(ck.check_zero_saddle(fam.sample(n=_samples(rng, s, fam.d), seed=rng)))
    return aggregate(out)


def _run_zero_t1(rng, s):
    return aggregate([ck.check_zero_global_t1(draw_family(rng, s, i)) for i in range(s.families)])


def _run_rank_bound(rng, s):
    out = []
    for i in range(s.families):
        fam = draw_family(rng, s, i, T=s.T[0] + i % (s.T[1] - s.T[0] + 1))
        minima, _ = global_minima_from_random_starts(fam, fam.k, s.starts, rng)
        out.extend(ck.check_rank_bound(fam, A, U) for A, U in minima)
    for _ in range(max(1, s.families // 3)):  # constructed: the T = 2 hyperbolic family
        fam = TaskFamily.random(d=5, k=2, T=2, seed=rng)
        out.append(ck.check_rank_bound(fam, *hyperbolic_minimum(fam, rng.uniform(-1, 1, 2))))
    return aggregate(out, "random-start minima and hyperbolic minima")


def _run_recovery(rng, s):
    out, other = [], 0
    for i in range(s.families):
        T, k = s.T[0] + i % 2, s.k[0] + (i // 2) % 2
        fam = draw_family(rng, s, i, d=k * T + int(rng.integers(0, 3)), k=k, T=T)
        tol = objective_tolerance(fam)
        fit = fit_lora_ml(fam, k, seed=rng)  # exact solver: from the SR start
        A, fac, _ = stationary.polish_stationary_point(fam, fit.A, fit.U)
        minima, n_other = global_minima_from_random_starts(fam, k, s.starts, rng)
        other += n_other
        if lora_ml_objective(fam, A, fac[0]) <= tol:
            out.append(ck.check_exact_recovery(fam, A, fac[0]))
        else:
            other += 1
        out.extend(ck.check_exact_recovery(fam, a, u) for a, u in minima)
    return aggregate(out, f"{other} runs ended at non-global points (outside the claim)")


def collinear_family(
    rng: np.random.Generator, d: int, T: int, c: Sequence[float] | None = None
) -> TaskFamily:
    """A family of rank-1 offsets ``c_t q q^T`` along one random unit ``q``.

    ``c`` defaults to ``U(0.5, 2)`` draws: bounded away from 0, so the continuum of minima
    ``A* + a q q^T`` (``a < min c_t``) moves the base by a visible amount.
    """
    base = TaskFamily.random(d=d, k=1, T=1, seed=rng)
    q = base.U_star[0] / np.linalg.norm(base.U_star[0])
    c = rng.uniform(0.5, 2.0, T) if c is None else np.asarray(c, dtype=float)
    return TaskFamily(base.A_star, np.sqrt(c)[:, None, None] * q[None])


def _run_independence(rng, s):
    out = []
    for _ in range(max(1, s.families // 2)):
        r = float(rng.uniform(0.2, 0.7))
        out.append(ck.check_independence_needed(*independence_counterexample(r=r)))
    for _ in range(max(1, s.families // 2)):
        fam = collinear_family(rng, d=s.d[1], T=3)
        out.append(ck.check_independence_needed(fam, *collinear_minimum(fam)))
    return aggregate(out, "d=2 three-vector construction and collinear offsets")


def _run_hyperbolic(rng, s):
    out = []
    for i in range(s.families):
        d = _draw(rng, s.d)
        k = 2 if d >= 4 and rng.random() < 0.5 else 1
        fam = draw_family(rng, s, i, d=d, k=k)
        out.append(ck.check_hyperbolic_family(fam, rng.uniform(0.2, 1.5, k) * rng.choice([-1, 1], k)))
    return aggregate(out)


def _run_strict_saddle(rng, s):
    out = []
    for i in range(s.families):
        d, k = (s.d[0], s.k[0]) if i % 2 == 0 else (s.d[1], s.k[1])
        fam = draw_family(rng, s, i, d=d, k=k)
        points = structured_stationary_points(fam, k)
        points += stationary.find_stationary_points(fam, k, n_starts=s.starts, seed=rng)
        out.append(ck.check_strict_saddle(fam, points))
    return aggregate(out)


def _run_gradient_global(rng, s):
    out = []
    for i in range(s.families):
        fam = draw_family(rng, s, i)
        out.append(ck.check_gradient_finds_global(fam, n_starts=s.starts, seed=rng))
    return aggregate(out)


def _run_rank_3k(rng, s):
    out = []
    for i in range(s.families):
        k = _draw(rng, s.k)
        fam = draw_family(rng, s, i, d=int(rng.integers(3 * k + 1, s.d[1] + 1)), k=k)
        A_hat, _ = hyperbolic_minimum(fam, rng.uniform(0.3, 1.2, k))
        out.append(ck.check_rank_3k_fine_tuning(fam, A_hat, fam.new_task(seed=rng)))
    return aggregate(out, "from hyperbolic minima (A^ != A*)")


def _run_t1(rng, s):
    return aggregate([ck.check_t1_nonidentifiable(draw_family(rng, s, i), s.starts, seed=rng)
                      for i in range(s.families)])


def _run_spurious(rng, s):
    fam = catalogued_spurious_family()
    # The catalogued start lands on the spurious minimum; the next starts of the same stream
    # are a fallback should a change in the solver move that one start to another basin.
    point = find_spurious_minimum(fam, n_starts=12, seed=SPURIOUS_CATALOGUE["start_seed"])
    if point is None:
        return CheckResult("spurious-minima", "T >= 3: spurious local minima exist", "appendix",
                           1.0, 0.0, ck.CURVATURE_RTOL, False, -MARGIN_CAP, 1, "theorem",
                           "the catalogued instance gave no certified spurious minimum")
    out = [ck.check_spurious_minimum(fam, *point)]
    # Fresh search: spurious minima with a sizeable basin occur on a few per cent of random
    # d = 3, T = 3 instances; each one found is certified too.
    found = 0
    for i in range(s.families):
        fam_i = draw_family(rng, s, i)
        point = find_spurious_minimum(fam_i, n_starts=s.starts, seed=rng)
        if point is not None:
            found += 1
            out.append(ck.check_spurious_minimum(fam_i, *point))
    return aggregate(out, f"catalogued instance + {found} found in {s.families} fresh instances")


def _run_hessian(rng, s):
    out = []
    for i in range(s.families):
        fam = draw_family(rng, s, i)
        r = int(rng.integers(1, fam.d + 1))
        out.append(ck.check_exact_hessian(fam, r, seed=rng, asymmetric=bool(i % 3 == 2)))
        out.append(ck.check_exact_hessian(fam.sample(n=_samples(rng, s, fam.d), seed=rng), r, seed=rng))
    return aggregate(out)


# --------------------------------------------------------------------------- runners: info
def _run_boundary(rng, s):
    families, outcomes = [], []
    for i in range(s.families):
        d = _draw(rng, s.d)
        fam = draw_family(rng, s, i, d=d, k=int(rng.integers(1, d)))
        families.append(fam)
        outcomes.append(em.recovery_outcome(fam, n_starts=s.starts, seed=rng))
    # Two instances with kT > d that are first-order identifiable, so both sides are covered.
    for d, k, T in ((3, 1, 4), (4, 2, 4)):
        fam = TaskFamily.random(d=d, k=k, T=T, seed=rng)
        families.append(fam)
        outcomes.append(em.recovery_outcome(fam, n_starts=s.starts, seed=rng))
    return em.check_recovery_boundary(families, outcomes)


def _protocol_families(rng, s):
    return [draw_family(rng, s, i) for i in range(s.families)]


def _run_paper_protocol(rng, s):
    runs = em.paper_protocol_runs(_protocol_families(rng, s), n_paper=s.starts // 2,
                                  n_normal=s.starts - s.starts // 2, seed=rng)
    return em.check_paper_protocol(runs)


#: Heuristic slopes of the estimation error (docs/theory.md, section 11): noise of size
#: sigma on d^2 entries of A estimated from N T samples gives sigma d / sqrt(N T).
SCALING_HEURISTIC = {"N": -0.5, "d": 1.0, "T": -0.5}
#: Base point (d, T, N) and the sweep values of the finite-sample checks.
SCALING_BASE = (4, 3, 1000)
SCALING_SWEEPS = {"ns": (250, 1000, 4000, 16_000), "ds": (4, 8, 16), "Ts": (3, 6, 12)}
SWEEP_POINTS = sum(len(v) for v in SCALING_SWEEPS.values())


def _lora_ml_estimate(data: TaskData) -> NDArray:
    return fit_lora_ml(data, 1, seed=0).A


def _a_star(family: TaskFamily) -> NDArray:
    return family.A_star


#: (estimator, target, check name, label) of the two finite-sample checks.
_LORA_ML_SCALING = (_lora_ml_estimate, _a_star, "sample-scaling-lora-ml", "A^ - A*")
_SR_SCALING = (standard_retraining, standard_retraining, "sample-scaling-sr", "A_SR^ - A_SR")


def _run_scaling(estimator, target, name, label):
    def run(rng, s):
        n_reps = max(1, s.families // SWEEP_POINTS)
        sweeps = em.sample_scaling_errors(estimator, target, base=SCALING_BASE, n_reps=n_reps,
                                          seed=rng, **SCALING_SWEEPS)
        return em.check_sample_scaling(name, label, sweeps, SCALING_HEURISTIC)
    return run


def _run_relaxation(rng, s):
    out = []
    for i in range(max(1, s.families // 3)):
        fam3 = draw_family(rng, s, i, T=3)
        out.append(em.check_relaxation(fam3, seed=rng))
        out.append(em.check_relaxation(fam3.sample(n=_samples(rng, s, fam3.d), seed=rng), seed=rng))
        out.append(em.check_relaxation(draw_family(rng, s, i, T=2), seed=rng))
    return replace(aggregate(out), detail="; ".join(r.detail for r in out[:3]))


# --------------------------------------------------------------------------- controls
def stream(seed: int, key: int) -> np.random.Generator:
    """The random stream ``key`` of base seed ``seed``.

    One independent stream per check, so ``--only NAME`` reproduces the full run's instances.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), key]))


def _perturb(M: NDArray, rng: np.random.Generator, size: float = 1e-3) -> NDArray:
    return M + size * rng.standard_normal(M.shape)


def _control_family(seed: int, **kw) -> tuple[np.random.Generator, TaskFamily]:
    rng = stream(seed, 1000)
    return rng, TaskFamily.random(seed=rng, **kw)


def _c_sr_global(seed):
    rng, fam = _control_family(seed, d=4, k=1, T=3)
    return rc.check_sr_global_minimum(fam, A=_perturb(standard_retraining(fam), rng))


def _c_sr_rank(seed):
    return rc.check_sr_rank(TaskFamily.collinear(d=5, k=1, T=3, seed=stream(seed, 1000)))


def _c_sr_floor(seed):
    rng, fam = _control_family(seed, d=6, k=1, T=3)
    return rc.check_sr_floor(fam, fam.new_task(seed=rng), base=fam.A_star)


def _c_sr_floor_every_n(seed):
    rng, fam = _control_family(seed, d=6, k=1, T=3)
    return rc.check_sr_floor_every_n(fam, fam.new_task(seed=rng), ns=(1000, 100_000), seed=rng,
                                     rank=2)


def _c_sr_plateau(seed):
    rng, fam = _control_family(seed, d=6, k=1, T=3)
    return rc.check_sr_plateau(fam, fam.new_task(seed=rng), seed=rng, base=fam.A_star)


def _c_sr_adapt_rank(seed):
    rng, fam = _control_family(seed, d=6, k=1, T=3)
    return rc.check_sr_adaptation_rank(fam, fam.new_task(seed=rng), base=fam.A_star)


def _c_rate(seed):
    return rc.check_fine_tuning_rate(5, 1, ns=(100, 1000, 10_000), n_seeds=5,
                                     seed=stream(seed, 1000), base_shift=1.0)


def _c_truth(seed):
    rng, fam = _control_family(seed, d=4, k=1, T=3)
    return ck.check_truth_global_minimum(fam, A=_perturb(fam.A_star, rng))


def _c_rotation(seed):
    rng, fam = _control_family(seed, d=4, k=1, T=3)
    Q = 1.001 * np.stack([np.linalg.qr(rng.standard_normal((2, 2)))[0] for _ in range(3)])
    return ck.check_rotation_invariance(fam, rank=2, seed=rng, Q=Q)


def _c_zero_saddle(seed):
    rng = stream(seed, 1000)
    fam = TaskFamily.random(d=4, k=1, T=1, seed=rng)
    equal = TaskFamily(fam.A_star, np.repeat(fam.U_star, 2, axis=0))  # T = 2, equal offsets
    return ck.check_zero_saddle(equal, enforce_assumptions=False)


def _c_zero_t1(seed):
    rng, fam = _control_family(seed, d=4, k=1, T=1)
    return ck.check_zero_global_t1(fam, A=_perturb(fam.W_star[0], rng))


def _c_rank_bound(seed):
    # Adapters of rank 2 > k = 1: a T = 1 minimum A^ = W*_1 - V V^T has rank(A^ - A*) = 3.
    rng, fam = _control_family(seed, d=5, k=1, T=1)
    V = rng.standard_normal((1, 5, 2))
    return ck.check_rank_bound(fam, fam.W_star[0] - V[0] @ V[0].T, V, enforce_assumptions=False)


def _c_recovery(seed):
    fam, A_hat, U_hat = independence_counterexample(r=float(stream(seed, 1000).uniform(0.2, 0.7)))
    return ck.check_exact_recovery(fam, A_hat, U_hat, enforce_assumptions=False)


def _c_independence(seed):
    fam, _, _ = independence_counterexample(r=float(stream(seed, 1000).uniform(0.2, 0.7)))
    return ck.check_independence_needed(fam, fam.A_star, fam.U_star)


def _c_hyperbolic(seed):
    _, fam = _control_family(seed, d=4, k=1, T=2)
    return ck.check_hyperbolic_family(fam, 0.0)


def _c_strict_saddle(seed):
    fam = catalogued_spurious_family()
    point = find_spurious_minimum(fam, n_starts=12, seed=SPURIOUS_CATALOGUE["start_seed"])
    points = structured_stationary_points(fam, 1, seed=stream(seed, 1000)) + [point]
    return ck.check_strict_saddle(fam, points, enforce_assumptions=False)


def _c_gradient_global(seed):
    return ck.check_gradient_finds_global(catalogued_spurious_family(), n_starts=4,
                                          seed=SPURIOUS_CATALOGUE["start_seed"],
                                          enforce_assumptions=False)


def _c_rank_3k(seed):
    rng, fam = _control_family(seed, d=6, k=1, T=2)
    return ck.check_rank_3k_fine_tuning(fam, fam.A_star, fam.new_task(seed=rng))


def _c_t1(seed):
    _, fam = _control_family(seed, d=4, k=1, T=1)
    return ck.check_t1_nonidentifiable(fam, points=[(fam.A_star, fam.U_star)] * 2)


def _c_spurious(seed):
    _, fam = _control_family(seed, d=3, k=1, T=3)
    return ck.check_spurious_minimum(fam, fam.A_star, fam.U_star)


def _c_hessian(seed):
    _, fam = _control_family(seed, d=4, k=1, T=3)

    def wrong_hvp(*args, **kwargs):
        return tuple(1.05 * b for b in landscape.lora_ml_hvp(*args, **kwargs))

    return ck.check_exact_hessian(fam, 2, seed=stream(seed, 1001), hvp=wrong_hvp)


def _c_boundary(seed):
    rng = stream(seed, 1000)
    families = [TaskFamily.random(d=d, k=k, T=T, seed=rng)
                for d, k, T in ((3, 1, 4), (4, 2, 4), (4, 1, 2), (4, 1, 3))]
    outcomes = [em.recovery_outcome(f, n_starts=1, seed=rng) for f in families]
    return em.check_recovery_boundary(families, outcomes, predictor=offset_columns_independent)


def _c_paper_protocol(seed):
    rng = stream(seed, 1000)
    families = [collinear_family(rng, d=3, T=3) for _ in range(2)]
    return em.check_paper_protocol(em.paper_protocol_runs(families, 1, 1, seed=rng))


def _first_samples(data: TaskData, m: int) -> TaskData:
    return TaskData(data.X[:, :m], data.Y[:, :m])


def _c_scaling(estimator, target, name, label):
    def control(seed):
        # A stub that ignores all but the first 2d + 2 samples: its error does not fall with N.
        def stub(data):
            return estimator(_first_samples(data, 2 * data.d + 2))

        sweeps = em.sample_scaling_errors(stub, target, base=SCALING_BASE, n_reps=2,
                                          seed=stream(seed, 1000), **SCALING_SWEEPS)
        return em.check_sample_scaling(name, label, sweeps, SCALING_HEURISTIC)
    return control


def _c_relaxation(seed):
    # Offsets c_t q q^T with c = (1, 2, 3): the relaxation's limit is the largest-trace base
    # A* + min_t c_t q q^T, far from A*.
    fam = collinear_family(stream(seed, 1000), d=4, T=3, c=(1.0, 2.0, 3.0))
    return em.check_relaxation(fam, expect_recovery=True)


#: name -> runner ``(Generator, InstanceSettings) -> CheckResult`` (the registry's order).
RUNNERS: dict[str, Callable[[np.random.Generator, InstanceSettings], CheckResult]] = {
    "sr-global-minimum": _run_sr_global,
    "sr-rank": _run_sr_rank,
    "sr-floor": _run_sr_floor,
    "sr-floor-every-n": _run_sr_floor_every_n,
    "ft-sr-plateau": _run_sr_plateau,
    "sr-adapt-rank": _run_sr_adapt_rank,
    "truth-global": _run_truth,
    "rotation-invariance": _run_rotation,
    "rank-2k": _run_rank_bound,
    "recovery-t3": _run_recovery,
    "recovery-paper-protocol": _run_paper_protocol,
    "recovery-boundary": _run_boundary,
    "independence-needed": _run_independence,
    "spurious-minima": _run_spurious,
    "t2-hyperbolic": _run_hyperbolic,
    "t2-strict-saddle": _run_strict_saddle,
    "t2-gradient-global": _run_gradient_global,
    "t2-rank-3k": _run_rank_3k,
    "t1-nonidentifiable": _run_t1,
    "zero-saddle": _run_zero_saddle,
    "zero-t1-global": _run_zero_t1,
    "ft-rate": _run_rate,
    "sample-scaling-lora-ml": _run_scaling(*_LORA_ML_SCALING),
    "sample-scaling-sr": _run_scaling(*_SR_SCALING),
    "relaxation": _run_relaxation,
    "hessian-exact": _run_hessian,
}
#: name -> negative control ``seed -> CheckResult``, which must not hold.
CONTROLS: dict[str, Callable[[int], CheckResult]] = {
    "sr-global-minimum": _c_sr_global,
    "sr-rank": _c_sr_rank,
    "sr-floor": _c_sr_floor,
    "sr-floor-every-n": _c_sr_floor_every_n,
    "ft-sr-plateau": _c_sr_plateau,
    "sr-adapt-rank": _c_sr_adapt_rank,
    "truth-global": _c_truth,
    "rotation-invariance": _c_rotation,
    "rank-2k": _c_rank_bound,
    "recovery-t3": _c_recovery,
    "recovery-paper-protocol": _c_paper_protocol,
    "recovery-boundary": _c_boundary,
    "independence-needed": _c_independence,
    "spurious-minima": _c_spurious,
    "t2-hyperbolic": _c_hyperbolic,
    "t2-strict-saddle": _c_strict_saddle,
    "t2-gradient-global": _c_gradient_global,
    "t2-rank-3k": _c_rank_3k,
    "t1-nonidentifiable": _c_t1,
    "zero-saddle": _c_zero_saddle,
    "zero-t1-global": _c_zero_t1,
    "ft-rate": _c_rate,
    "sample-scaling-lora-ml": _c_scaling(*_LORA_ML_SCALING),
    "sample-scaling-sr": _c_scaling(*_SR_SCALING),
    "relaxation": _c_relaxation,
    "hessian-exact": _c_hessian,
}
