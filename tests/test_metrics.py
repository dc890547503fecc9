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
