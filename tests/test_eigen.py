"""Tests of lowrank_theory/eigen.py: warm-started top eigenpairs of many symmetric matrices.

The Ritz pairs are compared with scipy.linalg.eigh (LAPACK's full decomposition, which shares
nothing with the block iteration), and checked against the interlacing bound they must obey.
"""

import numpy as np
import pytest
import scipy.linalg

from lowrank_theory.eigen import top_eigenpairs


def _stack(rng, T, m, planted=0):
    """Random symmetric matrices (Wigner, spectrum in about [-sqrt(2m), sqrt(2m)]), plus
    ``planted`` eigenvalues 3 to 5 times that edge: the gapped spectra the solver meets."""
    G = rng.standard_normal((T, m, m))
    S = (G + np.swapaxes(G, 1, 2)) / 2
    if planted:
        Q = np.linalg.qr(rng.standard_normal((T, m, planted)))[0]
        lam = np.sqrt(2 * m) * rng.uniform(3, 5, (T, planted))
        S = S + (Q * lam[:, None, :]) @ np.swapaxes(Q, 1, 2)
    return S


def _apply(S):
    return lambda X, index: S[index] @ X


def test_top_eigenpairs_are_lapacks(rng):
    """From a random start the top n eigenvalues of 6 symmetric 60 x 60 matrices with a gap after
    them equal scipy's to 1e-10 relative, their vectors span scipy's eigenspaces, all are
    flagged converged."""
    S = _stack(rng, 6, 60, planted=4)
    X0 = np.linalg.qr(rng.standard_normal((6, 60, 7)))[0]
    out = top_eigenpairs(_apply(S), X0, n_wanted=4)
    assert out.converged.all()
    for t in range(6):
        lam, vec = scipy.linalg.eigh(S[t])
        np.testing.assert_allclose(out.values[t, :4], lam[::-1][:4], rtol=1e-10)
        overlap = vec[:, ::-1][:, :4].T @ out.vectors[t, :, :4]
        np.testing.assert_allclose(np.abs(overlap), np.eye(4), atol=1e-7)
        np.testing.assert_allclose(out.vectors[t].T @ out.vectors[t], np.eye(7), atol=1e-12)


def test_warm_start_needs_fewer_expansions_and_ritz_values_stay_below(rng):
    """Started from the previous matrix's eigenvectors, a slightly changed matrix converges in
    fewer expansions than from a random start; every Ritz value is at most the eigenvalue of
    the same rank (Cauchy interlacing), the check that caught a loss of orthogonality."""
    S = _stack(rng, 4, 80, planted=3)
    X0 = np.linalg.qr(rng.standard_normal((4, 80, 6)))[0]
    cold = top_eigenpairs(_apply(S), X0, n_wanted=3)
    S2 = S + 1e-3 * _stack(rng, 4, 80)
    warm = top_eigenpairs(_apply(S2), cold.vectors, n_wanted=3)
    again = top_eigenpairs(_apply(S2), X0, n_wanted=3)
    assert warm.converged.all() and again.converged.all()
    assert warm.iterations.sum() < again.iterations.sum()
    for t in range(4):
        lam = np.linalg.eigvalsh(S2[t])[::-1][:6]
        assert np.all(warm.values[t] <= lam * (1 + 1e-12) + 1e-12)


def test_unconverged_matrices_are_reported(rng):
    """With no expansion allowed, or on gapless spectra (Wigner matrices, whose top eigenvalues
    crowd together) within few expansions, the flag says not converged (the caller then
    decomposes densely); the values are indeed off (control)."""
    S = _stack(rng, 3, 50)
    X0 = np.linalg.qr(rng.standard_normal((3, 50, 5)))[0]
    out = top_eigenpairs(_apply(S), X0, n_wanted=2, max_iter=0)
    assert not out.converged.any()
    assert (out.iterations == 0).all()
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(out.values[0, :2], np.linalg.eigvalsh(S[0])[::-1][:2], rtol=1e-6)
    few = top_eigenpairs(_apply(S), X0, n_wanted=2, max_iter=3)
    assert not few.converged.any() and (few.iterations == 3).all()
