"""Records of the standard-retraining checks: Theorem 1 and its corollary (docs/theory.md, section 4)."""

from __future__ import annotations

from lowrank_theory.retraining import standard_retraining
from lowrank_theory.tasks import TaskFamily

from .. import retraining_checks as rc
from ..instances import (
    RANDOM,
    InstanceSettings,
    PerTask,
    control_family,
    draw,
    draw_family,
    draw_samples,
    perturb,
    random_covariance,
    stream,
)
from ..record import Check, requires
from ..result import aggregate

__all__ = ["RECORDS"]

_EXACT_LS = "closed form (scipy.linalg.solve) against numpy.linalg.lstsq"
_FT_EXACT = ("fine_tune(method='exact'): Eckart-Young (population, whitened by Sigma^(1/2)), "
             "reduced-rank regression (n samples)")
_NEW_TASK = "one new task per family (U*_new with N(0, 1) entries, the family's covariance)"

_SHARED_NOTE = "shared: the claim's A_SR is the mean of the W*_t, and the new task needs one covariance"
_shared = (lambda f: f.Sigma is None or f.Sigma.ndim == 2,
           "needs one input covariance shared by the tasks (A_SR is then the mean of the W*_t)")
_wider_than_k = (lambda f: f.d > f.k, "needs d > k (a rank-k adapter fits any residual when d = k)")


def _sr_global(fam, rng, s):
    data = fam.sample(n=draw_samples(rng, s, fam.d), seed=rng)
    return aggregate([rc.check_sr_global_minimum(fam), rc.check_sr_global_minimum(data)])


def _c_sr_global(seed):
    rng, fam = control_family(seed, d=4, k=1, T=3)
    return rc.check_sr_global_minimum(fam, A=perturb(standard_retraining(fam), rng))


def _sr_rank(fam, rng, s):
    return rc.check_sr_rank(fam)


def _c_sr_rank(seed):
    return rc.check_sr_rank(TaskFamily.collinear(d=5, k=1, T=3, seed=stream(seed, 1000)))


def _sr_floor(fam, rng, s):
    return rc.check_sr_floor(fam, fam.new_task(seed=rng))


def _c_sr_floor(seed):
    rng, fam = control_family(seed, d=6, k=1, T=3)
    new = fam.new_task(seed=rng)
    return rc.check_sr_floor(fam, new, base=perturb(standard_retraining(fam), rng))


def _sr_floor_sigma(fam, rng, s):
    return rc.check_sr_floor_general_covariance(fam, fam.new_task(seed=rng))


def _c_sr_floor_sigma(seed):
    rng = stream(seed, 1000)
    fam = TaskFamily.random(d=6, k=1, T=3, seed=rng, Sigma=random_covariance(6, 100.0, rng))
    new = fam.new_task(seed=rng)
    return rc.check_sr_floor_general_covariance(
        fam, new, base=perturb(standard_retraining(fam), rng))


def _sr_floor_every_n(fam, rng, s):
    return rc.check_sr_floor_every_n(fam, fam.new_task(seed=rng), seed=rng)


def _c_sr_floor_every_n(seed):
    rng, fam = control_family(seed, d=6, k=1, T=3)
    return rc.check_sr_floor_every_n(fam, fam.new_task(seed=rng), ns=(1000, 100_000), seed=rng,
                                     rank=2)


def _sr_plateau(fam, rng, s):
    return rc.check_ft_sr_plateau(fam, fam.new_task(seed=rng), seed=rng)


def _c_sr_plateau(seed):
    rng, fam = control_family(seed, d=6, k=1, T=3)
    return rc.check_ft_sr_plateau(fam, fam.new_task(seed=rng), seed=rng, base=fam.A_star)


def _adapt_rank_family(rng, s, i):
    k, T = draw(rng, s.k), draw(rng, s.T)
    d = int(rng.integers(max(k * (T + 1), s.d[0]), s.d[1] + 1))
    return draw_family(rng, s, i, d=d, k=k, T=T)


def _sr_adapt_rank(fam, rng, s):
    return rc.check_sr_adapt_rank(fam, fam.new_task(seed=rng))


def _c_sr_adapt_rank(seed):
    rng, fam = control_family(seed, d=6, k=1, T=3)
    return rc.check_sr_adapt_rank(fam, fam.new_task(seed=rng), base=fam.A_star)


_SR_NEW = InstanceSettings(RANDOM, (10, 10), (1, 1), (3, 3), 3, notes=_NEW_TASK)

RECORDS = (
    Check(
        "sr-global-minimum", "consistency", "SR closed form is the global minimiser",
        "setup of Thm 1", "4.1", 1,
        InstanceSettings(RANDOM, (2, 8), (1, 2), (1, 4), 6, (None, 100.0, PerTask(100.0)),
                         samples=(10, 200), notes="each family also sampled once, N >= d + 2"),
        rc.check_sr_global_minimum, _c_sr_global, "A_SR + 1e-3 N(0, 1) noise",
        _EXACT_LS, "0 (gradient and mismatch)",
        "largest of |grad|/gradient scale and relative mismatch", on_family=_sr_global),
    Check(
        "sr-rank", "theorem", "rank(A_SR - A*) = min(kT, d)", "Thm 1", "4.2", 2,
        InstanceSettings(RANDOM, (2, 11), (1, 2), (1, 5), 10, (None, None, 100.0, PerTask(100.0))),
        rc.check_sr_rank, _c_sr_rank, "collinear offsets (not generic)",
        "standard_retraining, svdvals", "min(kT, d)", "numerical rank of A_SR - A*",
        on_family=_sr_rank),
    Check(
        "sr-floor", "theorem", "rank-k fine-tuning from A_SR keeps a positive floor",
        "Thm 1 corollary", "4.3", 3, _SR_NEW, rc.check_sr_floor, _c_sr_floor,
        "the SR base off by 1e-3 (N(0, 1) noise)", _FT_EXACT,
        "the floor from the offsets alone (QR of [U*_new, U*_1 .. U*_T]; no SR solve)",
        "population rank-k fine-tuning loss from standard_retraining's base",
        on_family=_sr_floor,
        applies=requires((lambda f: f.isotropic, "needs identity covariance (the general "
                          "covariance is sr-floor-general-covariance)"), _wider_than_k),
        covariance="identity: the general covariance is sr-floor-general-covariance"),
    Check(
        "sr-floor-every-n", "consistency", "no n-sample fit goes below the floor",
        "Thm 1 corollary", "4.3", 20,
        InstanceSettings(RANDOM, (10, 10), (1, 1), (3, 3), 3, (None, 100.0),
                         samples=(100, 100_000), notes=_NEW_TASK),
        rc.check_sr_floor_every_n, _c_sr_floor_every_n, "adapter rank k + 1", _FT_EXACT,
        "the floor", "smallest loss over n", on_family=_sr_floor_every_n,
        applies=requires(_shared), covariance=_SHARED_NOTE),
    Check(
        "ft-sr-plateau", "theorem", "from A_SR the loss plateaus at the floor",
        "Thm 1 corollary", "4.3", 4,
        InstanceSettings(RANDOM, (10, 10), (1, 1), (3, 3), 3, (None, 100.0),
                         samples=(100, 100_000), notes=_NEW_TASK),
        rc.check_ft_sr_plateau, _c_sr_plateau, "fine-tune from A* (loss falls as 1/n)", _FT_EXACT,
        "1 (loss / floor at n = 1e5)", "loss / floor at n = 1e5", on_family=_sr_plateau,
        applies=requires(_shared), covariance=_SHARED_NOTE),
    Check(
        "sr-adapt-rank", "theorem", "from A_SR rank k(T+1) reaches, k(T+1)-1 does not",
        "Thm 1 corollary", "4.4", 21,
        InstanceSettings(RANDOM, (4, 12), (1, 2), (1, 4), 6, (None, 100.0),
                         notes="d >= k(T+1); one new task per family"),
        rc.check_sr_adapt_rank, _c_sr_adapt_rank, "fine-tune from A* (rank k suffices)",
        _FT_EXACT, "0 (rank-k(T+1) loss)", "rank-k(T+1) population loss",
        on_family=_sr_adapt_rank, generate=_adapt_rank_family,
        applies=requires(_shared, (lambda f: f.k * (f.T + 1) <= f.d, "needs k(T+1) <= d")),
        covariance=_SHARED_NOTE),
    Check(
        "sr-floor-general-covariance", "theorem",
        "shared covariance Sigma: rank-k fine-tuning from A_SR keeps a positive floor",
        "Thm 1 corollary (any Sigma)", "4.5", 27,
        InstanceSettings(RANDOM, (6, 12), (1, 2), (2, 4), 4, (10.0, 100.0), notes=_NEW_TASK),
        rc.check_sr_floor_general_covariance, _c_sr_floor_sigma,
        "the SR base off by 1e-3 (N(0, 1) noise), Sigma of condition 100", _FT_EXACT,
        "the floor from the offsets and Sigma's Cholesky factor alone (no SR solve)",
        "population rank-k fine-tuning loss from standard_retraining's base",
        on_family=_sr_floor_sigma, applies=requires(_shared, _wider_than_k),
        covariance=_SHARED_NOTE),
)
