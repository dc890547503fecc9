import numpy as np

import lowrank_theory as lt
from lowrank_theory.losses import loss_gradient, statistics


def test_population_identity_closed_form(rng):
    fam = lt.TaskFamily.random(d=6, k=2, T=4, seed=rng)
    expected = fam.A_star + sum(u @ u.T for u in fam.U_star) / 4
    np.testing.assert_allclose(lt.standard_retraining(fam), expected, atol=1e-12)


def test_population_per_task_covariances(rng):
    """A_SR = (sum_t W*_t Sigma_t)(sum_t Sigma_t)^{-1}."""
    d, T = 4, 3
    S = np.stack([(g := rng.standard_normal((d, d))) @ g.T + np.eye(d) for _ in range(T)])
    fam = lt.TaskFamily.random(d=d, k=1, T=T, seed=rng, Sigma=S)
    expected = np.einsum("tij,tjk->ik", fam.W_star, S) @ np.linalg.inv(S.sum(0))
    A = lt.standard_retraining(fam)
    np.testing.assert_allclose(A, expected, atol=1e-10)
    # First-order optimality of a convex quadratic: the summed gradient vanishes.
    np.testing.assert_allclose(loss_gradient(statistics(fam), A).sum(0), 0.0, atol=1e-10)


def test_finite_sample_is_pooled_least_squares(rng):
    fam = lt.TaskFamily.random(d=5, k=1, T=3, seed=rng)
    data = fam.sample(40, seed=rng)
    X = data.X.reshape(-1, 5)
    Y = data.Y.reshape(-1, 5)
    B, *_ = np.linalg.lstsq(X, Y, rcond=None)
    np.testing.assert_allclose(lt.standard_retraining(data), B.T, atol=1e-10)


def test_singular_pooled_design_is_reported():
    fam = lt.TaskFamily.random(d=6, k=1, T=1, seed=0)
    import pytest

    with pytest.raises(ValueError, match="singular"):
        lt.standard_retraining(fam.sample(3, seed=0))
