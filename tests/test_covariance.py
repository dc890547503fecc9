"""Tests of lowrank_theory/covariance.py: the one square root of covariance matrices.

The root is compared with scipy's general matrix square root (``scipy.linalg.sqrtm``, a Schur
method that shares no code with the eigendecomposition used here) and the pseudo-inverse with
``numpy.linalg.pinv``; stacks of shape (T, d, d) must give each matrix's own root.
"""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from strategies import covariances

from lowrank_theory.covariance import covariance_sqrt, whiten


@given(S=covariances(d=5, max_condition=100.0))
def test_root_is_scipys_matrix_square_root(S):
    """For a positive definite S: root = sqrtm(S) and inv_root = sqrtm(S)^{-1}."""
    root, inv_root = covariance_sqrt(S)
    expected = scipy.linalg.sqrtm(S).real
    np.testing.assert_allclose(root, expected, atol=1e-10 * np.linalg.norm(expected))
    np.testing.assert_allclose(inv_root @ expected, np.eye(5), atol=1e-9)
    # Negative control: the root of a different covariance is not this one.
    assert not np.allclose(covariance_sqrt(2.0 * S)[0], expected, atol=1e-3)


def test_stack_gives_each_matrix_its_own_root(rng):
    """A (T, d, d) stack is rooted matrix by matrix, a (1, d, d) stack like its (d, d) matrix."""
    G = rng.standard_normal((3, 4, 4))
    S = G @ np.swapaxes(G, 1, 2) + np.eye(4)
    roots, inv_roots = covariance_sqrt(S)
    for t in range(3):
        np.testing.assert_allclose(roots[t], scipy.linalg.sqrtm(S[t]).real, atol=1e-10)
        np.testing.assert_allclose(inv_roots[t], covariance_sqrt(S[t])[1], atol=1e-10)
    np.testing.assert_allclose(covariance_sqrt(S[:1])[0][0], covariance_sqrt(S[0])[0], atol=0)
    assert not np.allclose(roots[0], roots[1], atol=1e-3)  # control: the stack is not shared


def test_singular_matrix_gets_the_pseudo_inverse_root(rng):
    """A rank-2 sample design: root^2 = S, inv_root = pinv(root), inv_root^2 = pinv(S)."""
    X = rng.standard_normal((2, 5))
    S = X.T @ X / 2
    root, inv_root = covariance_sqrt(S)
    np.testing.assert_allclose(root @ root, S, atol=1e-12)
    np.testing.assert_allclose(inv_root, np.linalg.pinv(root, rcond=1e-6, hermitian=True),
                               atol=1e-8)
    np.testing.assert_allclose(inv_root @ inv_root, np.linalg.pinv(S, rcond=1e-10), atol=1e-8)
    # Control: a plain inverse of the eigenvalues would blow up on the null space.
    assert np.linalg.norm(inv_root) < 1e3


def test_whiten_weights_the_frobenius_norm(rng):
    """||whiten(M, S)||_F^2 = tr(M S M^T); S = None is the identity."""
    M = rng.standard_normal((4, 4))
    G = rng.standard_normal((4, 4))
    S = G @ G.T + 0.5 * np.eye(4)
    assert np.sum(whiten(M, S) ** 2) == pytest.approx(np.trace(M @ S @ M.T), rel=1e-12)
    np.testing.assert_array_equal(whiten(M, None), M)
    assert np.sum(whiten(M, S) ** 2) != pytest.approx(np.sum(M**2), rel=1e-3)  # control
