import numpy as np
import pytest

from lowrank_theory import metrics


def test_base_error():
    assert metrics.base_error(np.eye(2), np.zeros((2, 2))) == pytest.approx(np.sqrt(2))
    assert metrics.base_error(2 * np.eye(3), np.eye(3), relative=True) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-zero"):
        metrics.base_error(np.eye(2), np.zeros((2, 2)), relative=True)
    with pytest.raises(ValueError, match="A must have shape"):
        metrics.base_error(np.eye(3), np.eye(2))


def test_offset_error_and_procrustes_undo_rotations(rng):
    U_star = rng.standard_normal((3, 6, 2))
    Q = np.linalg.qr(rng.standard_normal((3, 2, 2)))[0]
    U = U_star @ Q
    np.testing.assert_allclose(metrics.offset_error(U, U_star), 0.0, atol=1e-12)
    assert np.linalg.norm(U - U_star) > 1e-3
    np.testing.assert_allclose(metrics.procrustes_align(U, U_star), U_star, atol=1e-10)
    rel = metrics.offset_error(2 * U_star, U_star, relative=True)
    np.testing.assert_allclose(rel, 3.0)


def test_numerical_rank(rng):
    B = rng.standard_normal((8, 3)) @ rng.standard_normal((3, 8))
    assert metrics.numerical_rank(B) == 3
    assert metrics.numerical_rank(B + 1e-9 * rng.standard_normal((8, 8)), rtol=1e-6) == 3
    assert metrics.numerical_rank(np.zeros((4, 4))) == 0


def test_eckart_young_tail_is_the_truncated_svd_residual(rng):
    """The tail equals ||M - M_r||_F^2 for the truncated SVD M_r, and no rank-r matrix beats it."""
    M = rng.standard_normal((6, 5))
    P, s, Qt = np.linalg.svd(M)
    for r in range(6):
        M_r = (P[:, :r] * s[:r]) @ Qt[:r]
        assert metrics.eckart_young_tail(M, r) == pytest.approx(np.sum((M - M_r) ** 2), abs=1e-12)
        # Negative control: random rank-r matrices all leave more.
        for _ in range(5 if r else 0):
            D = rng.standard_normal((6, r)) @ rng.standard_normal((r, 5))
            assert np.sum((M - D) ** 2) > metrics.eckart_young_tail(M, r)
    with pytest.raises(ValueError, match="rank must be >= 0"):
        metrics.eckart_young_tail(M, -1)
