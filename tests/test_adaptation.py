import warnings

import numpy as np
import pytest
import scipy.linalg

import lowrank_theory as lt
from lowrank_theory.adaptation import excess_loss


def test_population_asymmetric_is_singular_value_tail(rng):
    """Best rank-r fine-tuning error from a base = squared singular values of W* - A past r."""
    fam = lt.TaskFamily.random(d=8, k=1, T=3, seed=rng)
    new = fam.new_task(seed=rng)
    A = lt.standard_retraining(fam)
    s = scipy.linalg.svdvals(new.W_star[0] - A)
    for r in (1, 2, 3):
        assert lt.fine_tune(A, new, rank=r).loss == pytest.approx(np.sum(s[r:] ** 2), rel=1e-10)


def test_population_symmetric_is_eigenvalue_tail(rng):
    fam = lt.TaskFamily.random(d=8, k=1, T=3, seed=rng)
    new = fam.new_task(seed=rng)
    A = lt.standard_retraining(fam)
    M = new.W_star[0] - A
    S = (M + M.T) / 2
    lam = np.linalg.eigvalsh(S)
    pos = np.sort(lam[lam > 0])[::-1]
    expected = np.sum(((M - M.T) / 2) ** 2) + np.sum(lam[lam < 0] ** 2) + np.sum(pos[2:] ** 2)
    assert lt.fine_tune(A, new, rank=2, adapter="symmetric").loss == pytest.approx(expected, rel=1e-10)


def test_population_general_covariance_whitening(rng):
    """min over rank-r D of ||(M - D) S^{1/2}||^2 = tail of the singular values of M S^{1/2}."""
    G = rng.standard_normal((5, 5))
    S = G @ G.T + np.eye(5)
    fam = lt.TaskFamily.random(d=5, k=1, T=3, seed=rng, Sigma=S)
    new = fam.new_task(seed=rng)
    A = np.zeros((5, 5))
    s = scipy.linalg.svdvals((new.W_star[0] - A) @ scipy.linalg.sqrtm(S).real)
    assert lt.fine_tune(A, new, rank=2).loss == pytest.approx(np.sum(s[2:] ** 2), rel=1e-8)
    # The symmetric adapter (solved numerically) can do no better than the asymmetric one.
    assert lt.fine_tune(A, new, rank=2, adapter="symmetric").loss >= np.sum(s[2:] ** 2) - 1e-9


def test_zero_loss_from_the_truth(rng):
    fam = lt.TaskFamily.random(d=6, k=2, T=3, seed=rng)
    new = fam.new_task(seed=rng)
    assert lt.fine_tune(fam.A_star, new, rank=2).loss < 1e-20


def test_reduced_rank_regression_beats_gradient_descent_on_the_sample(rng):
    """RRR is the exact empirical minimiser: GD from any start cannot reach a lower training loss."""
    fam = lt.TaskFamily.random(d=5, k=1, T=3, seed=rng)
    new = fam.new_task(seed=rng)
    A = fam.A_star + 0.1 * rng.standard_normal((5, 5))
    exact = lt.fine_tune(A, new, rank=1, n=60, seed=11)
    gd = lt.fine_tune(A, new, rank=1, n=60, seed=11, method="gd", steps=4000, lr=0.01)
    sample = new.sample(60, seed=np.random.default_rng(11))  # the sample fine_tune drew
    train = lambda D: np.mean(np.sum((sample.Y[0] - sample.X[0] @ (A + D).T) ** 2, axis=1))  # noqa: E731
    assert train(exact.delta) <= train(gd.delta) + 1e-9
    assert np.linalg.matrix_rank(exact.delta) == 1


def test_gd_history_is_the_excess_test_loss(rng):
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=rng)
    new = fam.new_task(seed=rng)
    ft = lt.fine_tune(fam.A_star, new, rank=1, n=None, seed=0, method="gd", steps=50)
    assert ft.history.shape == (51,)
    assert ft.history[-1] == pytest.approx(excess_loss(new, fam.A_star + ft.delta), rel=1e-10)
    assert ft.history[-1] < ft.history[0]


def test_same_seed_same_start_for_every_base(rng):
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=rng)
    new = fam.new_task(seed=rng)
    a = lt.fine_tune(np.zeros((4, 4)), new, n=30, seed=5, method="gd", steps=0)
    b = lt.fine_tune(np.ones((4, 4)), new, n=30, seed=5, method="gd", steps=0)
    np.testing.assert_array_equal(a.U, b.U)


def test_rate_from_truth_is_parametric():
    """From A*, the excess loss after reduced-rank regression decays like 1/n."""
    fam = lt.TaskFamily.random(d=6, k=1, T=3, sigma=0.5, seed=0)
    new = fam.new_task(seed=1)
    ns = np.array([200, 800, 3200])
    losses = [np.mean([lt.fine_tune(fam.A_star, new, rank=1, n=n, seed=s).loss for s in range(20)]) for n in ns]
    slope = np.polyfit(np.log(ns), np.log(losses), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.2)


def test_fine_tune_errors():
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=0)
    with pytest.raises(ValueError, match="T=1"):
        lt.fine_tune(fam.A_star, fam)
    new = fam.new_task(seed=0)
    with pytest.raises(ValueError, match="A must have shape"):
        lt.fine_tune(np.eye(3), new)
    with pytest.raises(ValueError, match="rank must be <= d"):
        lt.fine_tune(fam.A_star, new, rank=5)
    with pytest.raises(ValueError, match="method must be one of"):
        lt.fine_tune(fam.A_star, new, method="adam")
    with pytest.raises(ValueError, match="n must be >= 1"):
        lt.fine_tune(fam.A_star, new, n=0)
    with pytest.raises(TypeError, match="TaskFamily"):
        lt.fine_tune(fam.A_star, fam.sample(3))


def _authors_fine_tuning(A, sample, U, V, lr, steps):
    """The authors' fine-tuning step, written from their script: with X, Y as (d, n) and the
    residuals R = (A + U V^T) X - Y, U -= lr R X^T V / n and V -= lr X R^T U / n."""
    X, Y = sample.X[0].T, sample.Y[0].T
    n = X.shape[1]
    for _ in range(steps):
        R = (A + U @ V.T) @ X - Y
        U, V = U - lr * (R @ X.T @ V) / n, V - lr * (X @ R.T @ U) / n
    return U @ V.T


def test_gd_fine_tuning_follows_the_authors_step(rng):
    fam = lt.TaskFamily.random(d=5, k=1, T=3, seed=rng)
    new = fam.new_task(seed=rng)
    A = fam.A_star + 0.3 * rng.standard_normal((5, 5))
    ft = lt.fine_tune(A, new, rank=2, n=40, seed=9, method="gd", steps=200, lr=0.005)
    draws = np.random.default_rng(9)  # fine_tune draws the sample, then U, then V
    sample = new.sample(40, seed=draws)
    U, V = (0.1 * draws.standard_normal((1, 5, 2))[0] for _ in range(2))
    np.testing.assert_allclose(ft.delta, _authors_fine_tuning(A, sample, U, V, 0.005, 200),
                               rtol=0, atol=1e-13)
    # The "sum" convention steps on the mean squared error itself: half the step size gives
    # the same iterates; the same step size does not (negative control).
    half = lt.fine_tune(A, new, rank=2, n=40, seed=9, method="gd", steps=200, lr=0.0025,
                        convention="sum")
    np.testing.assert_allclose(half.delta, ft.delta, rtol=0, atol=1e-13)
    same = lt.fine_tune(A, new, rank=2, n=40, seed=9, method="gd", steps=200, lr=0.005,
                        convention="sum")
    assert np.abs(same.delta - ft.delta).max() > 1e-4


def test_fine_tune_convention_is_validated():
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=0)
    with pytest.raises(ValueError, match="convention must be one of"):
        lt.fine_tune(fam.A_star, fam.new_task(seed=0), method="gd", convention="half")


def test_fine_tune_takes_a_lora_ml_result_for_its_base():
    """``fine_tune(fit, task)`` fine-tunes from ``fit.A`` (it used to fail in float())."""
    fam = lt.TaskFamily.random(d=6, k=1, T=3, seed=0)
    new = fam.new_task(seed=1)
    fit = lt.fit_lora_ml(fam.sample(200, seed=2), k=1, seed=0)
    from_fit = lt.fine_tune(fit, new, rank=1, n=50, seed=3)
    from_base = lt.fine_tune(fit.A, new, rank=1, n=50, seed=3)
    assert from_fit.loss == from_base.loss
    np.testing.assert_array_equal(from_fit.delta, from_base.delta)
    with pytest.raises(TypeError, match="A must be a real numeric array"):
        lt.fine_tune(object(), new)


@pytest.mark.parametrize(("lr", "steps", "what"), [
    (1.0, 1000, "factors overflowed at step"),  # overflow: used to return loss=nan with warnings
    (0.8, 7, "excess loss grew from"),          # finite but exploding within the steps given
])
def test_diverging_gradient_descent_raises_and_suggests_a_smaller_step(lr, steps, what):
    """A step beyond the stability limit raises a ValueError naming lr and a smaller value,
    with no numpy overflow warnings on the way; the paper's step runs (negative control)."""
    fam = lt.TaskFamily.random(d=6, k=1, T=3, seed=0)
    new = fam.new_task(seed=1)
    A = lt.standard_retraining(fam)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=rf"diverged with lr={lr:g}: its {what}.*"
                                             rf"lr={lr / 10:g} \(the paper's is 0.005\)"):
            lt.fine_tune(A, new, rank=1, method="gd", lr=lr, steps=steps, seed=0)
        ok = lt.fine_tune(A, new, rank=1, method="gd", steps=steps, seed=0)
    assert np.all(np.isfinite(ok.history)) and ok.loss <= ok.history[0]


def test_one_task_family_with_a_stacked_covariance_is_the_task(rng):
    """Sigma of shape (1, d, d) on a one-task family means the same as its (d, d) matrix.

    Before one covariance root served every caller, ``fine_tune`` read ``task.Sigma`` as a
    (d, d) matrix and failed with a TypeError on the stacked form, while ``rank_floor`` worked.
    Both are compared with the (d, d) form, and the loss with the whitened Eckart-Young tail.
    """
    from lowrank_theory.schemes import rank_floor

    G = rng.standard_normal((5, 5))
    S = G @ G.T + np.eye(5)
    fam = lt.TaskFamily.random(d=5, k=1, T=3, seed=rng, Sigma=S)
    flat = fam.new_task(seed=1)
    stacked = lt.TaskFamily(flat.A_star, flat.U_star, flat.sigma, S[None])
    assert stacked.Sigma.shape == (1, 5, 5)
    A = lt.standard_retraining(fam)
    for rank in (1, 2):
        got = lt.fine_tune(A, stacked, rank=rank)
        want = lt.fine_tune(A, flat, rank=rank)
        np.testing.assert_allclose(got.delta, want.delta, atol=1e-10)
        s = scipy.linalg.svdvals((flat.W_star[0] - A) @ scipy.linalg.sqrtm(S).real)
        assert got.loss == pytest.approx(np.sum(s[rank:] ** 2), rel=1e-9)
        assert rank_floor(A, stacked, rank) == pytest.approx(got.loss, rel=1e-9)
    # Control: the identity covariance gives another loss.
    assert lt.fine_tune(A, flat.new_task(U=flat.U_star[0], Sigma=np.eye(5)), rank=1).loss != \
        pytest.approx(want.loss, rel=1e-3)


def _per_sample_half_mse(X, Y, W):
    """(1/2n) sum_i ||y_i - W x_i||^2 summed over the samples one by one (no statistics)."""
    return 0.5 * sum(float(np.sum((y - W @ x) ** 2)) for x, y in zip(X, Y)) / len(X)


@pytest.mark.parametrize("kind", ["asymmetric", "symmetric"])
def test_gradient_descent_step_is_a_step_on_the_per_sample_loss(rng, kind):
    """One step of adapter_gradient_descent equals F - lr dL/dF with L the per-sample half mean
    squared error, its gradient taken by central differences over each factor entry."""
    from lowrank_theory.adaptation import adapter_gradient_descent
    from lowrank_theory.adapters import as_adapter
    from lowrank_theory.losses import statistics

    new = lt.TaskFamily.random(d=4, k=1, T=1, seed=rng)
    data = new.sample(30, seed=rng)
    A = rng.standard_normal((4, 4))
    adapter = as_adapter(kind, 2)
    start = tuple(f[0] for f in adapter.init_factors(1, 4, rng, 0.3))
    lr, h = 0.01, 1e-6
    (after, *_), _ = adapter_gradient_descent(A, statistics(data), adapter, start, 1, lr)
    U0 = start[0]
    grad = np.zeros_like(U0)
    for i in np.ndindex(U0.shape):
        E = np.zeros_like(U0)
        E[i] = h
        loss = [_per_sample_half_mse(data.X[0], data.Y[0],
                                     A + adapter.delta(((U0 + e)[None], *[f[None] for f in start[1:]]))[0])
                for e in (E, -E)]
        grad[i] = (loss[0] - loss[1]) / (2 * h)
    np.testing.assert_allclose(after, U0 - lr * grad, atol=1e-8)
    # Control: the "sum" convention takes twice the step.
    (other, *_), _ = adapter_gradient_descent(A, statistics(data), adapter, start, 1, lr,
                                              convention="sum")
    assert not np.allclose(other, U0 - lr * grad, atol=1e-6)


def test_gradient_descent_batch_is_its_runs_one_by_one(rng):
    """A batch along a leading axis gives each run's own single-run descent, recorded alike."""
    from lowrank_theory.adaptation import adapter_gradient_descent
    from lowrank_theory.adapters import AsymmetricAdapter
    from lowrank_theory.losses import Statistics, statistics

    adapter = AsymmetricAdapter(2)
    fams = [lt.TaskFamily.random(d=5, k=1, T=1, seed=rng) for _ in range(3)]
    stats = [statistics(f.sample(40, seed=rng)) for f in fams]
    A = rng.standard_normal((3, 5, 5))
    start = adapter.init_factors(3, 5, rng)
    record = [0, 3, 50]
    batch = Statistics(*(np.stack([getattr(s, f) for s in stats]) for f in ("Sxx", "Sxy", "syy")))
    factors, deltas = adapter_gradient_descent(A, batch, adapter, start, 50, 0.01, record=record)
    assert deltas.shape == (3, 3, 5, 5)
    for b in range(3):
        one_f, one_d = adapter_gradient_descent(A[b], stats[b], adapter,
                                                tuple(f[b] for f in start), 50, 0.01,
                                                record=record)
        np.testing.assert_allclose(deltas[:, b], one_d, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(factors[0][b], one_f[0], rtol=1e-12, atol=1e-14)
    assert not np.allclose(deltas[:, 0], deltas[:, 1])  # control: the runs differ
    with pytest.raises(ValueError, match="record must be increasing"):
        adapter_gradient_descent(A, batch, adapter, start, 50, 0.01, record=[0, 60])
