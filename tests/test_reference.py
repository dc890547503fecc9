"""The per-sample reference against the library's paper protocol on sufficient statistics.

The reference (``lowrank_theory/reference.py``) shares no code with the library: its own
gradients from the N x d data, its own start, its own constants. Agreement of the iterates to
round-off therefore checks the statistics, the fused symmetric step, the chain rule of both
adapters and both loss conventions at once.
"""

import ast
import inspect

import numpy as np
import pytest

import lowrank_theory as lt
import lowrank_theory.reference as reference
from lowrank_theory.adapters import SymmetricAdapter
from lowrank_theory.losses import statistics
from lowrank_theory.paper_protocol import paper_round
from lowrank_theory.reference import paper_protocol_per_sample

#: Largest difference of iterates allowed after 300 rounds at d=10, T=3, N=500. Measured:
#: at most 1.3e-14 over 3 seeds, both conventions and both adapters (entries of size ~2).
ITERATE_ATOL = 1e-13


def _max_diff(fit, A, factors):
    return max(np.abs(fit.A - A).max(), *(np.abs(f - g).max() for f, g in zip(fit.factors, factors)))


def test_reference_imports_nothing_from_the_library_but_taskdata():
    tree = ast.parse(inspect.getsource(reference))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lowrank_theory"):
            imported += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("lowrank_theory") for a in node.names)
    assert imported == [("lowrank_theory.tasks", "TaskData")]


@pytest.mark.parametrize("convention", ["paper", "sum"])
@pytest.mark.parametrize("adapter", ["symmetric", "asymmetric"])
def test_paper_protocol_matches_the_independent_reference(global_random_seed, convention, adapter):
    """Iterates agree to round-off after 300 rounds (d=10, T=3, N=500, k=1)."""
    fam = lt.TaskFamily.random(d=10, k=1, T=3, seed=global_random_seed)
    data = fam.sample(500, seed=global_random_seed + 10)
    A, factors = paper_protocol_per_sample(data, 1, seed=global_random_seed, rounds=300,
                                           convention=convention, symmetric=adapter == "symmetric")
    fit = lt.fit_lora_ml(data, k=1, adapter=adapter, method="paper", seed=global_random_seed,
                         max_iter=300, convention=convention)
    assert _max_diff(fit, A, factors) <= ITERATE_ATOL


def test_rank_two_and_the_plain_round_match_the_reference():
    """k=2 takes the 4-D form of the fused step; paper_round is the plain (any adapter) form."""
    data = lt.TaskFamily.random(d=7, k=2, T=4, seed=0).sample(300, seed=1)
    A, factors = paper_protocol_per_sample(data, 2, seed=3, rounds=100)
    fit = lt.fit_lora_ml(data, k=2, method="paper", seed=3, max_iter=100)
    assert _max_diff(fit, A, factors) <= ITERATE_ATOL
    stats, ad = statistics(data), SymmetricAdapter(2)
    A_p, f_p = np.zeros((7, 7)), ad.init_factors(4, 7, np.random.default_rng(3), 0.1)
    for _ in range(100):
        A_p, f_p = paper_round(stats, ad, A_p, f_p, convention="paper")
    assert max(np.abs(A_p - A).max(), np.abs(f_p[0] - factors[0]).max()) <= ITERATE_ATOL


class _WrongChainRule(SymmetricAdapter):
    """dL/dU = 2 G U, right only when G is symmetric: the kind of bug the comparison catches."""

    def factor_gradients(self, factors, G):
        return (2.0 * G @ factors[0],)


def test_the_comparison_catches_a_wrong_chain_rule_and_a_wrong_convention():
    """Negative controls: each mistake moves the iterates far beyond ITERATE_ATOL."""
    data = lt.TaskFamily.random(d=10, k=1, T=3, seed=0).sample(500, seed=10)
    A, (U,) = paper_protocol_per_sample(data, 1, seed=0, rounds=300)
    stats, bad = statistics(data), _WrongChainRule(1)
    A_b, f_b = np.zeros((10, 10)), bad.init_factors(3, 10, np.random.default_rng(0), 0.1)
    for _ in range(300):
        A_b, f_b = paper_round(stats, bad, A_b, f_b, convention="paper")
    assert max(np.abs(A_b - A).max(), np.abs(f_b[0] - U).max()) > 1e3 * ITERATE_ATOL
    other = lt.fit_lora_ml(data, k=1, method="paper", seed=0, max_iter=300, convention="sum")
    assert _max_diff(other, A, (U,)) > 1e3 * ITERATE_ATOL


def test_reference_refuses_an_unknown_convention():
    data = lt.TaskFamily.random(d=3, k=1, T=3, seed=0).sample(10, seed=1)
    with pytest.raises(ValueError, match="convention"):
        paper_protocol_per_sample(data, 1, rounds=1, convention="mean")
