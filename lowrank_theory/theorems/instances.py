"""How each check draws its instances, the negative control it must fail, and the registry.

Every entry of :data:`CHECKS` is a :class:`CheckSpec`: the check's kind and claim, the
section of docs/theory.md that states it, the :class:`InstanceSettings` its runner draws from
(ranges of d, k and T, covariances, number of families and starts: what ``check --json``
reports), the solver used, what ``predicted`` and ``measured`` mean, and a negative control --
a perturbed instance, a violated assumption, or a stub answer -- on which the same check must
report failure (scikit-learn's check-the-checker pattern; ``tests/test_theorems.py`` walks the
registry). :func:`run_checks` runs the checks, :func:`run_controls` their controls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from numpy.typing import NDArray

from lowrank_theory import landscape
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
    "CheckSpec",
    "CHECKS",
    "random_covariance",
    "draw_family",
    "collinear_family",
    "run_checks",
    "run_controls",
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
        A, fac, _ = landscape.polish_stationary_point(fam, fit.A, fit.U)
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
        points += landscape.find_stationary_points(fam, k, n_starts=s.starts, seed=rng)
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
_SWEEP_POINTS = sum(len(v) for v in SCALING_SWEEPS.values())


def _lora_ml_estimate(data: TaskData) -> NDArray:
    return fit_lora_ml(data, 1, seed=0).A


def _a_star(family: TaskFamily) -> NDArray:
    return family.A_star


def _run_scaling(estimator, target, name, label):
    def run(rng, s):
        n_reps = max(1, s.families // _SWEEP_POINTS)
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
def _rng(seed: int, key: int) -> np.random.Generator:
    # One independent stream per check, so --only NAME reproduces the full run's instances.
    return np.random.default_rng(np.random.SeedSequence([int(seed), key]))


def _perturb(M: NDArray, rng: np.random.Generator, size: float = 1e-3) -> NDArray:
    return M + size * rng.standard_normal(M.shape)


def _control_family(seed: int, **kw) -> tuple[np.random.Generator, TaskFamily]:
    rng = _rng(seed, 1000)
    return rng, TaskFamily.random(seed=rng, **kw)


def _c_sr_global(seed):
    rng, fam = _control_family(seed, d=4, k=1, T=3)
    return rc.check_sr_global_minimum(fam, A=_perturb(standard_retraining(fam), rng))


def _c_sr_rank(seed):
    return rc.check_sr_rank(TaskFamily.collinear(d=5, k=1, T=3, seed=_rng(seed, 1000)))


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
                                     seed=_rng(seed, 1000), base_shift=1.0)


def _c_truth(seed):
    rng, fam = _control_family(seed, d=4, k=1, T=3)
    return ck.check_truth_global_minimum(fam, A=_perturb(fam.A_star, rng))


def _c_rotation(seed):
    rng, fam = _control_family(seed, d=4, k=1, T=3)
    Q = 1.001 * np.stack([np.linalg.qr(rng.standard_normal((2, 2)))[0] for _ in range(3)])
    return ck.check_rotation_invariance(fam, rank=2, seed=rng, Q=Q)


def _c_zero_saddle(seed):
    rng = _rng(seed, 1000)
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
    fam, A_hat, U_hat = independence_counterexample(r=float(_rng(seed, 1000).uniform(0.2, 0.7)))
    return ck.check_exact_recovery(fam, A_hat, U_hat, enforce_assumptions=False)


def _c_independence(seed):
    fam, _, _ = independence_counterexample(r=float(_rng(seed, 1000).uniform(0.2, 0.7)))
    return ck.check_independence_needed(fam, fam.A_star, fam.U_star)


def _c_hyperbolic(seed):
    _, fam = _control_family(seed, d=4, k=1, T=2)
    return ck.check_hyperbolic_family(fam, 0.0)


def _c_strict_saddle(seed):
    fam = catalogued_spurious_family()
    point = find_spurious_minimum(fam, n_starts=12, seed=SPURIOUS_CATALOGUE["start_seed"])
    points = structured_stationary_points(fam, 1, seed=_rng(seed, 1000)) + [point]
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

    return ck.check_exact_hessian(fam, 2, seed=_rng(seed, 1001), hvp=wrong_hvp)


def _c_boundary(seed):
    rng = _rng(seed, 1000)
    families = [TaskFamily.random(d=d, k=k, T=T, seed=rng)
                for d, k, T in ((3, 1, 4), (4, 2, 4), (4, 1, 2), (4, 1, 3))]
    outcomes = [em.recovery_outcome(f, n_starts=1, seed=rng) for f in families]
    return em.check_recovery_boundary(families, outcomes, predictor=offset_columns_independent)


def _c_paper_protocol(seed):
    rng = _rng(seed, 1000)
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
                                          seed=_rng(seed, 1000), **SCALING_SWEEPS)
        return em.check_sample_scaling(name, label, sweeps, SCALING_HEURISTIC)
    return control


def _c_relaxation(seed):
    # Offsets c_t q q^T with c = (1, 2, 3): the relaxation's limit is the largest-trace base
    # A* + min_t c_t q q^T, far from A*.
    fam = collinear_family(_rng(seed, 1000), d=4, T=3, c=(1.0, 2.0, 3.0))
    return em.check_relaxation(fam, expect_recovery=True)


# --------------------------------------------------------------------------- registry
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
    RANDOM, (4, 16), (1, 1), (3, 12), 4 * _SWEEP_POINTS, samples=(250, 16_000),
    notes=f"one-way sweeps from (d, T, N) = {SCALING_BASE}: "
    f"N in {SCALING_SWEEPS['ns']}, d in {SCALING_SWEEPS['ds']}, T in {SCALING_SWEEPS['Ts']}; "
    f"families / {_SWEEP_POINTS} per value; in the N sweep each family keeps its parameters")
_EXACT_LS = "closed form (scipy.linalg.solve) against numpy.linalg.lstsq"
_FT_EXACT = "fine_tune(method='exact'): Eckart-Young (population), reduced-rank regression (n samples)"
_LBFGS_STARTS = "fit_lora_ml(method='lbfgs') from N(0, 1) starts, Newton-polished"

_SPECS = (
    CheckSpec("sr-global-minimum", "consistency", "SR closed form is the global minimiser", "4.1", 1,
              _run_sr_global,
              InstanceSettings(RANDOM, (2, 8), (1, 2), (1, 4), 6, (None, 10.0, 10.0),
                               samples=(10, 200), notes="each family also sampled once, N >= d + 2"),
              _EXACT_LS, "0 (gradient and mismatch)",
              "largest of |grad|/gradient scale and relative mismatch",
              _c_sr_global, "A_SR + 1e-3 N(0, 1) noise"),
    CheckSpec("sr-rank", "theorem", "rank(A_SR - A*) = min(kT, d)", "4.2", 2, _run_sr_rank,
              InstanceSettings(RANDOM, (2, 11), (1, 2), (1, 5), 10), "standard_retraining, svdvals",
              "min(kT, d)", "numerical rank of A_SR - A*",
              _c_sr_rank, "collinear offsets (not generic)"),
    CheckSpec("sr-floor", "theorem", "rank-k fine-tuning from A_SR keeps a positive floor", "4.3", 3,
              _run_sr_floor, _SR_NEW, _FT_EXACT, "the floor: spectral tail of W*_new - A_SR beyond k",
              "population rank-k fine-tuning loss", _c_sr_floor, "fine-tune from A* (floor vanishes)"),
    CheckSpec("sr-floor-every-n", "consistency", "no n-sample fit goes below the floor", "4.3", 20,
              _run_sr_floor_every_n, replace(_SR_NEW, samples=(100, 100_000)), _FT_EXACT,
              "the floor", "smallest loss over n", _c_sr_floor_every_n, "adapter rank k + 1"),
    CheckSpec("ft-sr-plateau", "theorem", "from A_SR the loss plateaus at the floor", "4.3", 4,
              _run_sr_plateau, replace(_SR_NEW, samples=(100, 100_000)), _FT_EXACT,
              "1 (loss / floor at n = 1e5)", "loss / floor at n = 1e5",
              _c_sr_plateau, "fine-tune from A* (loss falls as 1/n)"),
    CheckSpec("sr-adapt-rank", "theorem", "from A_SR rank k(T+1) reaches, k(T+1)-1 does not", "4.4",
              21, _run_sr_adapt_rank,
              InstanceSettings(RANDOM, (4, 12), (1, 2), (1, 4), 6, starts=1,
                               notes="d >= k(T+1); one new task per family"),
              _FT_EXACT, "0 (rank-k(T+1) loss)", "rank-k(T+1) population loss",
              _c_sr_adapt_rank, "fine-tune from A* (rank k suffices)"),
    CheckSpec("truth-global", "consistency", "the truth is a global minimum, zero excess loss", "5.1",
              5, _run_truth, InstanceSettings(RANDOM, (2, 8), (1, 8), (1, 4), 10, (None, 10.0),
                                              notes="k <= d"),
              "lora_ml_objective, lora_ml_gradient", "0", "F at the truth",
              _c_truth, "A* + 1e-3 N(0, 1) noise"),
    CheckSpec("rotation-invariance", "consistency", "F invariant under U_t -> U_t Q_t", "5.2", 6,
              _run_rotation,
              InstanceSettings(RANDOM, (2, 7), (1, 7), (1, 3), 10, samples=(50, 50),
                               notes="adapter rank r uniform in 1..d; each family also sampled"),
              "lora_ml_objective at a random point", "0", "relative change of F",
              _c_rotation, "Q_t = 1.001 x orthogonal"),
    CheckSpec("rank-2k", "consistency", "global minima have rank(A^ - A*) <= 2k", "5.3", 8,
              _run_rank_bound,
              InstanceSettings(RANDOM, (3, 6), (1, 2), (1, 4), 8, (None, None, 10.0), starts=3,
                               notes="T cycles 1..4; plus families/3 hyperbolic minima (d=5, k=2, T=2)"),
              _LBFGS_STARTS, "2k (rank bound)", "numerical rank of A^ - A*",
              _c_rank_bound, "adapters of rank 2 > k = 1"),
    CheckSpec("recovery-t3", "theorem", "T >= 3, independent offsets: exact recovery", "6.1", 9,
              _run_recovery,
              InstanceSettings(RANDOM, (3, 10), (1, 2), (3, 4), 8, (None, None, None, 10.0),
                               starts=2, notes="d = kT + {0, 1, 2}; T and k cycle"),
              "fit_lora_ml (exact, from SR) and " + _LBFGS_STARTS,
              "0", "max of |A^-A*|_F/scale and offset errors/scale",
              _c_recovery, "d = 2, T = 3 offsets (columns dependent)"),
    CheckSpec("recovery-paper-protocol", "info", "paper protocol ends at A* or a spurious minimum",
              "12.2", 23, _run_paper_protocol,
              InstanceSettings(RANDOM, (3, 3), (1, 1), (3, 3), 8, starts=4,
                               notes="per family 2 paper starts (A0 = 0, U0 ~ N(0, 0.1^2)) and 2 "
                               "N(0, 1) starts; 3000 rounds; steps 0.003 (U), 0.03 (A) on the "
                               "paper's objective F / (2T)"),
              "paper_round x 3000 (fit_lora_ml(method='paper')); end points Newton-polished or "
              "continued by L-BFGS, then certified",
              "1 (all runs explained)", "fraction of runs at A* or a certified spurious minimum",
              _c_paper_protocol, "collinear offsets (a continuum of minima)"),
    CheckSpec("recovery-boundary", "info", "recovery only where first-order identifiable", "6.2",
              24,
              _run_boundary,
              InstanceSettings(RANDOM, (3, 6), (1, 5), (2, 5), 8, starts=2,
                               notes="k uniform in 1..d-1; plus (d, k, T) = (3, 1, 4), (4, 2, 4)"),
              "fit_lora_ml (exact) and fit_lora_ml(method='lbfgs') from N(0, 1) starts",
              "1 (no recovery outside the predictor)",
              "fraction of instances consistent with the predictor",
              _c_boundary, "column independence as the predictor"),
    CheckSpec("independence-needed", "info", "without independence, recovery fails", "6.2", 10,
              _run_independence,
              InstanceSettings("independence_counterexample (d=2) and collinear_family (d=4)",
                               (2, 4), (1, 1), (3, 3), 6,
                               notes="r ~ U(0.2, 0.7); collinear offsets c_t q q^T, c_t ~ U(0.5, 2)"),
              "closed-form constructions", "0 (F of the counterexample)", "|A^-A*|_F/scale",
              _c_independence, "the truth itself (A^ = A*)"),
    CheckSpec("spurious-minima", "theorem", "T >= 3: certified spurious local minima exist", "6.3",
              16, _run_spurious, InstanceSettings(RANDOM, (3, 3), (1, 1), (3, 3), 40, starts=4,
                                                  notes="plus the catalogued instance (seed 17)"),
              _LBFGS_STARTS + ", certified", "> 0 (lambda_min(H)/|H| modulo symmetry)",
              "lambda_min(H)/|H| modulo symmetry", _c_spurious, "the truth (a global minimum)"),
    CheckSpec("t2-hyperbolic", "consistency", "T = 2 hyperbolic family of zero-loss minima", "7.1",
              11, _run_hyperbolic, InstanceSettings(RANDOM, (2, 8), (1, 2), (2, 2), 8,
                                                    notes="k = 2 for half of d >= 4"),
              "closed form", "0 (F)", "F at the constructed minimum", _c_hyperbolic, "rapidity s = 0"),
    CheckSpec("t2-strict-saddle", "theorem", "T = 2: non-global stationary points are strict saddles",
              "7.2", 12, _run_strict_saddle,
              InstanceSettings(RANDOM, (3, 4), (1, 2), (2, 2), 4, starts=6,
                               notes="(d, k) alternates (3, 1), (4, 2); (A_SR, 0) and U_s = 0 faces "
                               "plus zeros of |grad F|^2 from 6 starts"),
              "landscape.find_stationary_points, polished; dense Hessian",
              "< 0 (lambda_min(H)/|H|)", "largest lambda_min(H)/|H| over non-global points",
              _c_strict_saddle, "T = 3 instance with a spurious minimum"),
    CheckSpec("t2-gradient-global", "theorem", "T = 2: random starts reach a global minimum", "7.2",
              13, _run_gradient_global,
              InstanceSettings(RANDOM, (2, 6), (1, 2), (2, 2), 6, starts=4), _LBFGS_STARTS,
              "0", "fraction of starts not at zero loss", _c_gradient_global,
              "T = 3 instance with a spurious minimum"),
    CheckSpec("t2-rank-3k", "consistency", "T = 2: rank 3k reaches the new task, 3k-1 does not", "7.3",
              14, _run_rank_3k, InstanceSettings(RANDOM, (4, 11), (1, 2), (2, 2), 6,
                                                 notes="d > 3k; from hyperbolic minima"),
              _FT_EXACT, "0 (rank-3k loss)", "rank-3k population loss",
              _c_rank_3k, "from A* (rank k suffices)"),
    CheckSpec("t1-nonidentifiable", "consistency", "T = 1: A is not identified", "8", 15, _run_t1,
              InstanceSettings(RANDOM, (2, 8), (1, 8), (1, 1), 6, starts=5,
                               notes="k <= d; 5 constructed minima per family"),
              "closed form", "0 (F)", "largest F over the constructed minima",
              _c_t1, "two copies of the truth"),
    CheckSpec("zero-saddle", "theorem", "(A_SR, 0) is a strict saddle (T >= 2)", "9", 7,
              _run_zero_saddle,
              InstanceSettings(RANDOM, (2, 7), (1, 1), (2, 4), 6, samples=(100, 100),
                               notes="adapter rank r uniform in 1..d; each family also sampled"),
              "dense Hessian", "-4 max_t lambda_max(M_t - mean M), over |H|",
              "lambda_min(H)/|H|", _c_zero_saddle, "T = 2 with equal offsets"),
    CheckSpec("zero-t1-global", "consistency", "(A_SR, 0) is a global minimum (T = 1)", "9", 22,
              _run_zero_t1, InstanceSettings(RANDOM, (2, 7), (1, 3), (1, 1), 6),
              "certify_stationary_point", "0 (F)", "F at (A_SR, 0)",
              _c_zero_t1, "A_SR + 1e-3 N(0, 1) noise"),
    CheckSpec("ft-rate", "theorem", "from A*: excess ~ k d sigma^2 / n", "10", 17, _run_rate,
              InstanceSettings(RANDOM, (5, 20), (1, 2), (1, 1), 4, samples=(100, 10_000),
                               notes=f"(d, k) in {RATE_CONFIGS[:4]}; n in {{100, 300, 1000, "
                               "3000, 10000}; 20 new tasks per n"),
              "fine_tune(method='exact'): reduced-rank regression", "-1 (log-log slope in n)",
              "fitted slope", _c_rate, "base A* + E, |E|_F = 1"),
    CheckSpec("sample-scaling-lora-ml", "info", "LoRA-ML's |A^ - A*| ~ N^(-1/2)", "11", 25,
              _run_scaling(_lora_ml_estimate, _a_star, "sample-scaling-lora-ml", "A^ - A*"),
              _SCALING, "fit_lora_ml (exact) on N samples per task",
              "-1/2 (log-log slope in N)", "fitted slope in N",
              _c_scaling(_lora_ml_estimate, _a_star, "sample-scaling-lora-ml", "A^ - A*"),
              "a stub that uses only the first 2d + 2 samples"),
    CheckSpec("sample-scaling-sr", "info", "SR's |A_SR^ - A_SR| ~ N^(-1/2)", "11", 26,
              _run_scaling(standard_retraining, standard_retraining, "sample-scaling-sr",
                           "A_SR^ - A_SR"),
              replace(_SCALING, families=8 * _SWEEP_POINTS),
              "standard_retraining on N samples per task, against the population's",
              "-1/2 (log-log slope in N)", "fitted slope in N",
              _c_scaling(standard_retraining, standard_retraining, "sample-scaling-sr",
                         "A_SR^ - A_SR"),
              "a stub that uses only the first 2d + 2 samples"),
    CheckSpec("relaxation", "info", "convex trace relaxation vs LoRA-ML", "12.3", 18, _run_relaxation,
              InstanceSettings(RANDOM, (6, 6), (1, 1), (2, 3), 3, samples=(300, 300),
                               notes="per 3 families: T = 3 population, a sample of it, T = 2"),
              "cvxpy (trace relaxation) and fit_lora_ml (exact)",
              "lower bound (relaxation, lam = 0)", "F of LoRA-ML",
              _c_relaxation, "collinear offsets (c = 1, 2, 3) with recovery expected"),
    CheckSpec("hessian-exact", "consistency", "exact Hessian vs Taylor remainders and Lanczos", "14",
              19, _run_hessian,
              InstanceSettings(RANDOM, (2, 5), (1, 1), (1, 3), 6, (None, 5.0), samples=(40, 40),
                               notes="adapter rank r in 1..d; every third asymmetric"),
              "landscape.lora_ml_hvp, dense eigh and Lanczos (ARPACK)",
              "4 (second-order remainder slope)", "measured slope",
              _c_hessian, "Hessian-vector product scaled by 1.05"),
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
        res = _named(spec, spec.runner(_rng(seed, spec.key), spec.settings.scaled(scale)))
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
