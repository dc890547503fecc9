"""Records of the checks across adaptation schemes (docs/theory.md 4.6, docs/schemes.md)."""

from __future__ import annotations

from lowrank_theory.schemes import checks as sc
from lowrank_theory.schemes.lora import FixedRankLoRA, FullFineTune
from lowrank_theory.schemes.preserving import SubspaceInit

from ..instances import RANDOM, InstanceSettings, control_family
from ..record import Check, requires

__all__ = ["RECORDS"]

_IDENTITY = (lambda f: f.isotropic, "needs identity covariance (the schemes are compared at the "
             "paper's setting, docs/schemes.md)")
_NOTE = "one new task per family; population (exact updates)"
_COVARIANCE = "identity: the schemes are compared at the paper's setting"


def _floor(fam, rng, s):
    return sc.check_sr_floor_across_schemes(fam, fam.new_task(seed=rng))


def _c_floor(seed):
    # Near miss: dense fine-tuning within the budget of rank k(T+1) - 1 when d < 2k(T+1)
    # (d = 6, k = 1, T = 3: 36 parameters = 2 d 3), whose update has rank d > k(T+1).
    rng, fam = control_family(seed, d=6, k=1, T=3)
    return sc.check_sr_floor_across_schemes(fam, fam.new_task(seed=rng),
                                            schemes=[FixedRankLoRA(), FullFineTune()])


def _rank_k(fam, rng, s):
    return sc.check_rank_k_suffices(fam, fam.new_task(seed=rng))


def _c_rank_k(seed):
    # T = 2: LoRA-ML's base is a member of the hyperbolic family, not A*, so rank k falls short.
    rng, fam = control_family(seed, d=6, k=1, T=2)
    return sc.check_rank_k_suffices(fam, fam.new_task(seed=rng))


def _crossing(fam, rng, s):
    return sc.check_sr_crossing(fam, fam.new_task(seed=rng))


def _c_crossing(seed):
    # A scheme that never leaves the subspace SR's base was retrained on never crosses.
    rng, fam = control_family(seed, d=10, k=1, T=3)
    return sc.check_sr_crossing(fam, fam.new_task(seed=rng), SubspaceInit(beta=1.0, steps=0))


_SETTINGS = InstanceSettings(RANDOM, (10, 10), (1, 1), (3, 3), 2, notes=_NOTE)

RECORDS = (
    Check(
        "schemes-sr-floor", "theorem",
        "from A_SR no scheme below 2dk(T+1) parameters goes under the rank floor",
        "Thm 1 corollary, across schemes", "4.6", 32, _SETTINGS,
        sc.check_sr_floor_across_schemes, _c_floor,
        "dense fine-tuning within budget at d = 6 < 2k(T+1) = 8 (update of rank d)",
        "exact LoRA, adaptive rank, interpolation, mixture, subspace start (population)",
        "the floor at rank k(T+1) - 1", "smallest loss over schemes and budgets",
        on_family=_floor, applies=requires(_IDENTITY), covariance=_COVARIANCE),
    Check(
        "schemes-rank-k", "theorem", "from the LoRA-ML base rank k suffices for every scheme",
        "Thm 3, across schemes", "4.6", 33, _SETTINGS, sc.check_rank_k_suffices, _c_rank_k,
        "T = 2 (LoRA-ML's base is a hyperbolic minimum, not A*)",
        "fit_lora_ml (exact), then each scheme at its rank-k budget", "0",
        "worst loss / SR's rank-k floor", on_family=_rank_k,
        applies=requires(_IDENTITY, (lambda f: f.T >= 3, "needs T >= 3")),
        covariance=_COVARIANCE),
    Check(
        "schemes-sr-crossing", "theorem",
        "from A_SR exact LoRA first matches LoRA-ML's rank-k loss at rank k(T+1)",
        "Thm 1 corollary, across schemes", "4.6", 34, _SETTINGS, sc.check_sr_crossing,
        _c_crossing, "a subspace-constrained start (beta = 1) that never leaves SR's subspace",
        "exact LoRA from A_SR at budgets 2dr, r = 1 .. k(T+1) + 1",
        "2dk(T+1)", "the first budget within reach of the target", on_family=_crossing,
        applies=requires(_IDENTITY, (lambda f: f.T >= 3, "needs T >= 3"),
                         (lambda f: f.k * (f.T + 1) < f.d, "needs k(T+1) < d")),
        covariance=_COVARIANCE),
)
