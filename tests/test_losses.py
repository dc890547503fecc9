import numpy as np
import pytest
import scipy.linalg

import lowrank_theory as lt
from lowrank_theory.losses import excess_losses, loss_gradient, statistics, task_losses
from lowrank_theory.reference import per_sample_gradient, per_sample_loss


def test_sample_loss_equals_per_sample_formula(rng):
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=rng)
    data = fam.sample(57, seed=rng)
    W = rng.standard_normal((3, 4, 4))
    stats = statistics(data)
    np.testing.assert_allclose(task_losses(stats, W), per_sample_loss(data, W), rtol=1e-12)
    np.testing.assert_allclose(loss_gradient(stats, W), per_sample_gradient(data, W), rtol=1e-10, atol=1e-12)


def test_population_loss_closed_form(rng):
    """E||y - Wx||^2 = ||(W* - W) Sigma^{1/2}||_F^2 + d sigma^2 for a general covariance."""
    G = rng.standard_normal((5, 5))
    S = G @ G.T + np.eye(5)
    fam = lt.TaskFamily.random(d=5, k=2, T=2, sigma=0.4, seed=rng, Sigma=S)
    W = rng.standard_normal((2, 5, 5))
    root = scipy.linalg.sqrtm(S).real
    expected = np.linalg.norm((fam.W_star - W) @ root, axis=(1, 2)) ** 2
    stats = statistics(fam)
    np.testing.assert_allclose(task_losses(stats, W), expected + 5 * 0.16, rtol=1e-10)
    np.testing.assert_allclose(excess_losses(stats, W), expected, rtol=1e-10)


def test_population_is_the_large_sample_limit():
    fam = lt.TaskFamily.random(d=3, k=1, T=2, sigma=0.2, seed=0)
    W = np.zeros((2, 3, 3))
    emp = task_losses(statistics(fam.sample(400_000, seed=1)), W)
    np.testing.assert_allclose(emp, task_losses(statistics(fam), W), rtol=0.02)


def test_statistics_rejects_other_types():
    with pytest.raises(TypeError, match="TaskFamily"):
        statistics(np.zeros((2, 2)))
