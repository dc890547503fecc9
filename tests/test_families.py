"""Tests of lowrank_theory/families.py: the random constructions behind TaskFamily.

Each construction is checked for the structure it promises, computed independently of it
(Gram matrices, ranks, eigenvalues, the sample's regression identity), with a control that
lacks the structure; and TaskFamily's classmethods are shown to be these constructions.
"""

import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory import families


def test_orthonormal_family_has_orthonormal_offset_columns(rng):
    """All kT columns of draw_orthonormal are orthonormal times scale; a random family's are not."""
    _, U = families.draw_orthonormal(8, 2, 3, scale=1.5, seed=rng)
    C = U.transpose(1, 0, 2).reshape(8, 6)
    np.testing.assert_allclose(C.T @ C, 2.25 * np.eye(6), atol=1e-12)
    _, R = families.draw_random(8, 2, 3, seed=rng)
    C = R.transpose(1, 0, 2).reshape(8, 6)
    assert not np.allclose(C.T @ C, np.diag(np.diag(C.T @ C)), atol=1e-3)
    with pytest.raises(ValueError, match=r"k\*T <= d"):
        families.draw_orthonormal(5, 2, 3, seed=0)


def test_collinear_family_spans_k_dimensions(rng):
    """The kT columns of draw_collinear have rank k; a random family's have rank kT."""
    _, U = families.draw_collinear(8, 2, 3, seed=rng)
    assert np.linalg.matrix_rank(U.transpose(1, 0, 2).reshape(8, 6), tol=1e-10) == 2
    _, R = families.draw_random(8, 2, 3, seed=rng)
    assert np.linalg.matrix_rank(R.transpose(1, 0, 2).reshape(8, 6), tol=1e-10) == 6


def test_spectrum_family_has_the_chosen_eigenvalues(rng):
    """Offsets U_t U_t^T have the requested eigenvalues, and A* the requested spectrum."""
    spec = np.array([[3.0, 0.5], [2.0, 1.0]])
    A, U = families.draw_from_spectrum(spec, 6, base_spectrum=np.arange(6.0), seed=rng)
    for t in range(2):
        lam = np.linalg.eigvalsh(U[t] @ U[t].T)[::-1][:2]
        np.testing.assert_allclose(lam, np.sort(spec[t])[::-1], rtol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(A), np.arange(6.0), atol=1e-12)
    with pytest.raises(ValueError, match="strictly positive"):
        families.draw_from_spectrum([[1.0, 0.0]], 4, seed=0)


def test_sample_satisfies_the_regression_model(rng):
    """With sigma = 0, Y = X W*^T exactly; the noise of sigma > 0 has standard deviation sigma;
    the inputs' second moment approaches Sigma."""
    W = rng.standard_normal((2, 3, 3))
    S = np.diag([1.0, 4.0, 9.0])
    X, Y = families.draw_sample(W, np.broadcast_to(S, (2, 3, 3)), 0.0, n=20000, seed=rng)
    np.testing.assert_allclose(Y, X @ np.swapaxes(W, 1, 2), atol=1e-12)
    np.testing.assert_allclose(X[0].T @ X[0] / 20000, S, atol=0.2)
    X, Y = families.draw_sample(W, None, 0.5, n=20000, seed=rng)
    noise = Y - X @ np.swapaxes(W, 1, 2)
    assert np.std(noise) == pytest.approx(0.5, rel=0.02)
    assert np.std(noise) != pytest.approx(0.25, rel=0.1)  # control


def test_taskfamily_classmethods_are_these_constructions():
    """TaskFamily.random/orthonormal/collinear/from_spectrum hold exactly the drawn arrays."""
    pairs = [
        (lt.TaskFamily.random(5, 2, 3, seed=7), families.draw_random(5, 2, 3, seed=7)),
        (lt.TaskFamily.orthonormal(6, 2, 3, scale=2.0, seed=7),
         families.draw_orthonormal(6, 2, 3, scale=2.0, seed=7)),
        (lt.TaskFamily.collinear(5, 2, 3, seed=7), families.draw_collinear(5, 2, 3, seed=7)),
        (lt.TaskFamily.from_spectrum([[1.0], [2.0]], 4, seed=7),
         families.draw_from_spectrum([[1.0], [2.0]], 4, seed=7)),
    ]
    for fam, (A, U) in pairs:
        np.testing.assert_array_equal(fam.A_star, A)
        np.testing.assert_array_equal(fam.U_star, U)
    assert not np.array_equal(lt.TaskFamily.random(5, 2, 3, seed=8).A_star, pairs[0][1][0])
