import numpy as np
import pytest

from lowrank_theory.adapters import AsymmetricAdapter, SymmetricAdapter, as_adapter


def test_asymmetric_projection_is_eckart_young(rng):
    """The rank-r truncation error equals the sum of the discarded squared singular values."""
    M = rng.standard_normal((3, 6, 6))
    ad = AsymmetricAdapter(2)
    D = ad.delta(ad.project(M))
    s = np.linalg.svd(M, compute_uv=False)
    np.testing.assert_allclose(np.linalg.norm(M - D, axis=(1, 2)) ** 2, (s[:, 2:] ** 2).sum(1), rtol=1e-10)
    assert np.all(np.linalg.matrix_rank(D) <= 2)


def test_symmetric_projection_is_best_psd_rank_r(rng):
    """Error = ||skew M||^2 + negative eigenvalues^2 + positive eigenvalues beyond the r largest."""
    M = rng.standard_normal((6, 6))
    (U,) = SymmetricAdapter(2).project(M)
    S = (M + M.T) / 2
    lam = np.linalg.eigvalsh(S)
    pos = np.sort(lam[lam > 0])[::-1]
    expected = np.sum(((M - M.T) / 2) ** 2) + np.sum(lam[lam < 0] ** 2) + np.sum(pos[2:] ** 2)
    assert np.sum((M - U @ U.T) ** 2) == pytest.approx(expected, rel=1e-10)
    # No PSD rank-2 competitor does better.
    for _ in range(50):
        V = U + 0.1 * rng.standard_normal(U.shape)
        assert np.sum((M - V @ V.T) ** 2) >= expected - 1e-12


def test_factor_gradients_match_finite_differences(rng):
    G = rng.standard_normal((6, 6))
    for ad in (SymmetricAdapter(2), AsymmetricAdapter(2)):
        factors = ad.init_factors(1, 6, rng, 1.0)
        f = lambda fac, ad=ad: np.sum(G * ad.delta(fac)[0])  # noqa: E731 - linear in Delta: <G, dDelta>
        grads = ad.factor_gradients(factors, G[None])
        eps = 1e-6
        for i, fac in enumerate(factors):
            E = rng.standard_normal(fac.shape)
            plus = list(factors)
            plus[i] = fac + eps * E
            minus = list(factors)
            minus[i] = fac - eps * E
            fd = (f(tuple(plus)) - f(tuple(minus))) / (2 * eps)
            assert fd == pytest.approx(np.sum(grads[i] * E), rel=1e-6)


def test_as_adapter_normalisation_and_errors():
    assert as_adapter(3) == SymmetricAdapter(3)
    assert as_adapter("asymmetric", 2) == AsymmetricAdapter(2)
    assert as_adapter(None, 1) == SymmetricAdapter(1)
    with pytest.raises(ValueError, match="one of"):
        as_adapter("diagonal", 1)
    with pytest.raises(ValueError, match="disagrees"):
        as_adapter(SymmetricAdapter(2), 3)
    with pytest.raises(ValueError, match="rank must be >= 1"):
        SymmetricAdapter(0)
    with pytest.raises(ValueError, match="rank must be <= d"):
        SymmetricAdapter(5).check_rank(3)
