"""Tests of lowrank_theory/span.py: the population problem solved in the offsets' span.

The warm-started eigenpairs are held to full eigendecompositions (the dense path), the
low-rank formulas of the objective and the stationarity to the library's dense ones on the
explicit reduced statistics, and the span solver to full-space solvers in tests/test_lora_ml.py.
"""

import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory import span
from lowrank_theory.adapters import SymmetricAdapter
from lowrank_theory.objective import stationarity, summed_objective


@pytest.mark.parametrize(("d", "k", "T"), [(60, 2, 10), (120, 3, 12), (200, 8, 10), (80, 1, 40)])
def test_warm_eigenpairs_agree_with_full_eigendecompositions(global_random_seed, d, k, T):
    """fit_exact_span with warm top-k eigenpairs and with full eigendecompositions: the same
    base to 1e-10 relative, both at the objective target, in as many iterations give or take
    two, from the same start (first objective to 1e-3: its U-step is solved loosely). In between the iterates drift apart
    (the warm U-steps are solved to a tolerance that tightens with the objective), but the
    warm objective never increases."""
    fam = lt.TaskFamily.random(d=d, k=k, T=T, seed=global_random_seed)
    warm = span.fit_exact_span(fam, k, eigensolver="warm")
    full = span.fit_exact_span(fam, k, eigensolver="full")
    assert "warm" in warm.message and "warm" not in full.message
    assert warm.converged and full.converged
    assert np.linalg.norm(warm.A - full.A) <= 1e-10 * np.linalg.norm(full.A)
    assert lt.metrics.base_error(warm.A, fam.A_star, relative=True) < 1e-10
    assert warm.history[0] == pytest.approx(full.history[0], rel=1e-3)
    assert np.all(np.diff(warm.history) <= 1e-12 * warm.history[0])
    assert abs(warm.n_iter - full.n_iter) <= 2 and warm.n_iter >= 3


def test_warm_path_controls_eigensolver_and_small_spans():
    """Small spans and asymmetric adapters run the dense path; an unknown eigensolver is refused."""
    fam = lt.TaskFamily.random(d=10, k=1, T=3, seed=0)
    assert "warm" not in span.fit_exact_span(fam, 1).message  # m = 3 < 2 * block
    big = lt.TaskFamily.random(d=60, k=2, T=8, seed=0)
    assert "warm" in span.fit_exact_span(big, 2).message
    assert "warm" not in span.fit_exact_span(big, 2, adapter="asymmetric").message
    with pytest.raises(ValueError, match="eigensolver must be one of"):
        span.fit_exact_span(big, 2, eigensolver="lanczos")
    with pytest.raises(ValueError, match="identity input covariance"):
        span.fit_exact_span(lt.TaskFamily.random(d=6, k=1, T=3, seed=0, Sigma=2 * np.eye(6)), 1)
    with pytest.raises(ValueError, match="identity input covariance"):
        span.fit_exact_span(fam.sample(50, seed=1), 1)


@pytest.mark.parametrize("T", [2, 5])
def test_low_rank_objective_and_stationarity_are_the_dense_ones(rng, T):
    """At random points (b, v) the objective from k + r pieces equals summed_objective on the
    explicit reduced statistics, near zero too (the explicit fallback), and span_stationarity
    equals objective.stationarity; a moved base changes both (control)."""
    u = rng.standard_normal((T, 12, 2))
    stats = span.reduced_statistics(u)
    V = rng.standard_normal((T, 12, 3))
    b = rng.standard_normal((12, 12))
    b = b + b.T
    C = np.mean(u @ np.swapaxes(u, 1, 2), axis=0)
    b_next = span._base_change(C, V)
    delta = SymmetricAdapter(3).delta((V,))
    dense = summed_objective(stats, b, delta)
    assert span._objective(u, V, b, b_next) == pytest.approx(dense, rel=1e-10)
    g, rel = stationarity(stats, SymmetricAdapter(3), b, (V,))
    g2, rel2 = span.span_stationarity(u, V, b, b_next)
    assert g2 == pytest.approx(g, rel=1e-10) and rel2 == pytest.approx(rel, rel=1e-10)
    assert span._objective(u, V, b + 1e-3, b_next) != pytest.approx(dense, rel=1e-6)
    # At a zero-loss point with b != 0 the pieces cancel: the explicit residuals take over.
    Vz = u
    bz = np.zeros((12, 12))
    assert span._objective(u, Vz, bz, span._base_change(C, Vz)) == pytest.approx(0.0, abs=1e-20)


def test_objective_keeps_precision_where_the_pieces_cancel(rng, monkeypatch):
    """Two tasks whose residuals u_t u_t^T - v_t v_t^T - b are 1e-9 while b is of order one (a
    zero-loss point away from A*, as at T = 2): the objective is summed from the explicit
    residuals (where the pieces would lose it to cancellation) and equals the sum of squares
    computed here to 1e-6 relative; a base moved by 1e-6 gives another value (control). At a
    point of large objective the pieces are used."""
    base = rng.standard_normal((10, 10))
    base = base + base.T
    V = rng.standard_normal((2, 10, 1))
    E = 1e-9 * rng.standard_normal((2, 10, 10))
    E = E + np.swapaxes(E, 1, 2)
    target = base + V @ np.swapaxes(V, 1, 2) + E  # = u_t u_t^T, indefinite
    explicit = sum(float(np.sum((target[t] - V[t] @ V[t].T - base) ** 2)) for t in range(2))
    # target = P P^T - N N^T; the formula is quadratic in each factor, so -N N^T joins V.
    lam, vec = np.linalg.eigh(target)
    root = vec * np.sqrt(np.abs(lam))[:, None, :]
    P, N = root * (lam > 0)[:, None, :], root * (lam < 0)[:, None, :]
    V_all = np.concatenate([V, N], axis=-1)
    C = np.mean(P @ np.swapaxes(P, 1, 2), axis=0)
    b_next = span._base_change(C, V_all)
    calls = []
    original = span._explicit_objective
    monkeypatch.setattr(span, "_explicit_objective", lambda *a: calls.append(1) or original(*a))
    got = span._objective(P, V_all, base, b_next)
    assert explicit < 1e-15 and calls == [1]
    assert got == pytest.approx(explicit, rel=1e-6, abs=0)
    assert span._objective(P, V_all, base + 1e-6, b_next) > 1e3 * explicit
    calls.clear()
    assert span._objective(P, V, base, span._base_change(C, V)) > 1.0 and calls == []
