"""The finite-sample formulas of the checks against brute-force simulations that share no code
with the library: the reduced-rank-regression expectation (ft-rate, e2e-finite-sample), the
Sigma-weighted Eckart-Young tail, and the asymmetric first-order kernel."""

import numpy as np
import pytest
import scipy.linalg
from threadpoolctl import threadpool_limits

import lowrank_theory as lt
from lowrank_theory import theorems as th
from lowrank_theory.metrics import eckart_young_tail


@pytest.fixture(autouse=True)
def _single_threaded_blas():
    with threadpool_limits(1):
        yield


def _rrr_excess_monte_carlo(d, k, n, sigma, draws, rng, Sigma_root=None):
    """Mean excess ||(D^ - B) Sigma^{1/2}||_F^2 of rank-k reduced-rank regression, by direct
    simulation: least squares on (X, Y), then the best rank-k fit in the metric of X^T X
    (truncated SVD of (X^T X)^{1/2} B_ols^T), written here from scratch."""
    out = []
    for _ in range(draws):
        U = rng.standard_normal((d, k))
        B = U @ U.T  # the true update, rank k (the signal is far above the noise)
        Z = rng.standard_normal((n, d))
        X = Z if Sigma_root is None else Z @ Sigma_root
        Y = X @ B.T + sigma * rng.standard_normal((n, d))
        B_ols = np.linalg.lstsq(X, Y, rcond=None)[0].T
        lam, vec = np.linalg.eigh(X.T @ X)
        root, inv_root = (vec * np.sqrt(lam)) @ vec.T, (vec / np.sqrt(lam)) @ vec.T
        u, s, vt = np.linalg.svd(root @ B_ols.T)
        D = (inv_root @ (u[:, :k] * s[:k]) @ vt[:k]).T
        R = D - B
        out.append(np.sum((R if Sigma_root is None else R @ Sigma_root.T) ** 2))
    return float(np.mean(out))


@pytest.mark.parametrize("d, k, n", [(4, 1, 20), (6, 2, 30), (8, 1, 100)])
def test_expected_rrr_excess_matches_a_simulation(d, k, n):
    """sigma^2 k [d/(n-d-1) + (d-k)/(n-k-1)] is the simulated mean within 4 standard errors
    (4000 draws), including small n where it differs from sigma^2 k (2d-k) / (n-d-1); a
    control shows the simulation tells the two apart at d = 8, k = 1 (they differ by 8%)."""
    rng = np.random.default_rng(0)
    sigma = 0.1
    draws = [_rrr_excess_monte_carlo(d, k, n, sigma, 1, rng) for _ in range(4000)]
    mean, se = np.mean(draws), np.std(draws) / np.sqrt(len(draws))
    predicted = th.expected_rrr_excess(d, k, n, sigma)
    assert abs(mean - predicted) <= 4 * se, (mean, predicted, se)
    if (d, k) == (8, 1):
        naive = sigma**2 * k * (2 * d - k) / (n - d - 1)
        assert abs(mean - naive) > 4 * se


def test_expected_rrr_excess_holds_for_a_covariance():
    """Whitening leaves the expectation unchanged: inputs of condition 100 give the same mean
    excess in the Sigma metric."""
    rng = np.random.default_rng(1)
    Q = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    root = (Q * np.sqrt(np.geomspace(1, 100, 5))) @ Q.T
    mean = _rrr_excess_monte_carlo(5, 1, 40, 0.1, 3000, rng, Sigma_root=root)
    assert mean == pytest.approx(th.expected_rrr_excess(5, 1, 40, 0.1), rel=0.06)


def test_expected_rrr_excess_refuses_too_few_samples():
    """n must exceed d + 1 (the inverse Wishart mean is infinite otherwise)."""
    with pytest.raises(ValueError, match="n"):
        th.expected_rrr_excess(10, 1, 11, 0.1)


def test_eckart_young_tail_matches_a_matrix_square_root():
    """The tail from the eigenvalues of M Sigma M^T equals the SVD tail of M Sigma^{1/2}."""
    rng = np.random.default_rng(2)
    M = rng.standard_normal((6, 6))
    Q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    Sigma = (Q * np.geomspace(1, 100, 6)) @ Q.T
    s = np.linalg.svd(M @ np.real(scipy.linalg.sqrtm(Sigma)), compute_uv=False)
    for r in range(6):
        assert eckart_young_tail(M, r, Sigma) == pytest.approx(np.sum(s[r:] ** 2), rel=1e-9)
    assert eckart_young_tail(M, 2) == pytest.approx(
        np.sum(np.linalg.svd(M, compute_uv=False)[2:] ** 2), rel=1e-12)


@pytest.mark.parametrize("d, k", [(4, 1), (5, 2), (6, 3)])
def test_asymmetric_kernel_of_one_task_is_the_tangent_space(d, k):
    """T = 1: the first-order kernel is the tangent space of the rank-k matrices at U U^T, of
    dimension d^2 - (d - k)^2 (closed form); T = 3 with independent columns leaves none."""
    fam = lt.TaskFamily.random(d=d, k=k, T=1, seed=0)
    assert th.asymmetric_kernel_dimension(fam) == d * d - (d - k) ** 2
    if 3 * k <= d:
        assert th.asymmetric_kernel_dimension(lt.TaskFamily.random(d=d, k=k, T=3, seed=0)) == 0


def test_e2e_prediction_uses_the_fitted_base_not_the_solver():
    """A small end-to-end run holds (exact retraining, 100 draws, d = 4), and fine-tuning from
    a base moved out of the offsets' span by the estimation error's size breaks the agreement:
    the excess then exceeds the prediction made from the fitted base."""
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=3)
    ok = th.check_e2e_finite_sample(fam, N=1000, n=60, n_draws=100, seed=4, retrainings=("exact",))
    assert ok.holds, ok.detail
    size = th.expected_rrr_excess(4, 1, 60, 0.1) ** 0.5
    moved = th.check_e2e_finite_sample(fam, N=1000, n=60, n_draws=100, seed=4,
                                       retrainings=("exact",), base_shift=size)
    assert not moved.holds and moved.measured > 1.15
