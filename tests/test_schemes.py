"""Tests of lowrank_theory/schemes: each scheme against a closed form or an independent
computation (raw samples, numpy only), each with a negative control that must fail."""


import numpy as np
import pytest
import scipy.optimize

import lowrank_theory as lt
from lowrank_theory import schemes as S
from lowrank_theory.losses import statistics
from lowrank_theory.tasks import TaskFamily

D, K, T = 8, 1, 3


@pytest.fixture
def setup(global_random_seed):
    fam = TaskFamily.random(D, K, T, sigma=0.1, seed=global_random_seed)
    return fam, fam.new_task(seed=global_random_seed + 100)


def sample_of(task, n, seed):
    """The sample AdaptationScheme.adapt draws from an int seed (drawn first, as fine_tune)."""
    data = task.sample(n, seed=np.random.default_rng(seed))
    return data.X[0], data.Y[0]


def brute_rrr(X, Y, A, rank):
    """Reduced-rank regression from raw samples: least squares, then the SVD of the fit."""
    B = np.linalg.lstsq(X, Y - X @ A.T, rcond=None)[0]
    _, s, Vt = np.linalg.svd(X @ B, full_matrices=False)
    Vr = Vt[:rank].T
    return (B @ Vr @ Vr.T).T, s**2 / X.shape[0]


def frob_loss(W, W_star):
    return float(np.sum((W - W_star) ** 2))


# --------------------------------------------------------------------------- interface
@pytest.mark.parametrize("method,n", [("exact", None), ("exact", 40), ("gd", None), ("gd", 40)])
def test_fixed_rank_is_fine_tune_with_rank_budget_over_2d(setup, method, n):
    """The wrapper is fine_tune at rank budget // (2d), with the same sample and start."""
    fam, new = setup
    A = lt.standard_retraining(fam)
    scheme = S.FixedRankLoRA(method, steps=50)
    res = scheme.adapt(A, new, budget=2 * D * 2 + 5, n=n, seed=7)
    ft = lt.fine_tune(A, new, rank=2, n=n, seed=7, adapter="asymmetric", method=method, steps=50)
    np.testing.assert_array_equal(res.delta, ft.delta)
    assert res.params == 2 * D * 2 and res.info["rank"] == 2
    assert res.loss == pytest.approx(frob_loss(res.W, new.W_star[0]), rel=1e-12)
    if n is not None:  # negative control: another seed, another sample
        other = scheme.adapt(A, new, budget=2 * D * 2, n=n, seed=8)
        assert not np.allclose(other.delta, res.delta)


def test_forgetting_is_the_mean_loss_increase_on_the_preserved_tasks(setup):
    fam, new = setup
    A = fam.A_star + 0.1
    res = S.FixedRankLoRA().adapt(A, new, 2 * D, preserve=fam)
    direct = [frob_loss(res.W, W) - frob_loss(A, W) for W in fam.W_star]
    np.testing.assert_allclose(res.preserve_loss, [frob_loss(res.W, W) for W in fam.W_star])
    assert res.forgetting == pytest.approx(np.mean(direct), rel=1e-10)
    assert S.FixedRankLoRA().adapt(A, new, 2 * D).forgetting is None


@pytest.mark.parametrize("kwargs,error,match", [
    ({"task": "new"}, TypeError, "task must be a TaskFamily"),
    ({"task": "family"}, ValueError, "exactly one task"),
    ({"base": np.eye(3)}, ValueError, "base must have shape"),
    ({"budget": 2 * D - 1}, ValueError, "budget must be >= 16"),
    ({"budget": 2.5}, TypeError, "budget must be an integer"),
    ({"n": 0}, ValueError, "n must be >= 1"),
    ({"seed": -1}, ValueError, "seed must be a non-negative"),
    ({"preserve": "x"}, TypeError, "preserve must be"),
    ({"preserve": TaskFamily.random(3, 1, 2, seed=0)}, ValueError, "preserve must have dimension"),
])
def test_adapt_validates_its_arguments(setup, kwargs, error, match):
    fam, new = setup
    args = {"base": fam.A_star, "task": new, "budget": 2 * D, "n": None, "seed": 0,
            "preserve": None, **kwargs}
    args["task"] = {"new": np.eye(D), "family": fam}.get(args["task"], args["task"]) \
        if isinstance(args["task"], str) else args["task"]
    with pytest.raises(error, match=match):
        S.FixedRankLoRA().adapt(args["base"], args["task"], args["budget"], n=args["n"],
                                seed=args["seed"], preserve=args["preserve"])


@pytest.mark.parametrize("factory,match", [
    (lambda: S.FixedRankLoRA("sgd"), "method must be one of"),
    (lambda: S.SubspaceInit(beta=2.0), "beta must be in"),
    (lambda: S.WeightInterpolation("half"), "inner must be"),
    (lambda: S.WeightInterpolation(folds=1), "folds must be >= 2"),
    (lambda: S.MixtureOfAdapters(np.zeros((2, 3, 4))), "adapters must have shape"),
    (lambda: S.PostPerturbation(S.FixedRankLoRA(), "x"), "harmful must be"),
    (lambda: S.PostPerturbation(S.FixedRankLoRA(), TaskFamily.random(3, 1, 1, seed=0), rho=0.0),
     "rho must be > 0"),
])
def test_scheme_hyperparameters_are_validated(factory, match):
    with pytest.raises((TypeError, ValueError), match=match):
        factory()


# --------------------------------------------------------------------------- exact LoRA
def test_reduced_rank_update_matches_brute_force_svd(setup, global_random_seed):
    """RRR on statistics = least squares + SVD of the fitted values on the raw samples, and
    the empirical loss drops by exactly the salience of each kept direction."""
    fam, new = setup
    A = lt.standard_retraining(fam)
    n = 30
    X, Y = sample_of(new, n, global_random_seed)
    stats = statistics(new.sample(n, seed=np.random.default_rng(global_random_seed)))
    for rank in (1, 3):
        delta, lam = S.reduced_rank_update(stats, A, rank)
        ref, s2 = brute_rrr(X, Y, A, rank)
        np.testing.assert_allclose(delta, ref, atol=1e-9 * np.abs(ref).max())
        np.testing.assert_allclose(lam, s2, rtol=1e-8, atol=1e-10 * s2[0])
        emp = lambda Dl: np.mean(np.sum((Y - X @ (A + Dl).T) ** 2, axis=1))  # noqa: E731
        full = S.least_squares_update(stats, A)
        assert emp(delta) == pytest.approx(emp(full) + lam[rank:].sum(), rel=1e-9)
        # Negative control: the brute force at another rank is a different update.
        assert not np.allclose(delta, brute_rrr(X, Y, A, rank + 1)[0], atol=1e-6)
    exact = S.FixedRankLoRA().adapt(A, new, 2 * D * 3, n=n, seed=global_random_seed)
    np.testing.assert_allclose(exact.delta, brute_rrr(X, Y, A, 3)[0], atol=1e-8)


def test_full_fine_tune_is_least_squares_and_reaches_the_population(setup):
    fam, new = setup
    A = lt.standard_retraining(fam)
    X, Y = sample_of(new, 25, 3)
    res = S.FullFineTune().adapt(A, new, D * D, n=25, seed=3)
    np.testing.assert_allclose(res.delta, np.linalg.lstsq(X, Y - X @ A.T, rcond=None)[0].T,
                               atol=1e-9)
    assert res.params == D * D
    assert S.FullFineTune().adapt(A, new, D * D).loss < 1e-20
    with pytest.raises(ValueError, match="budget must be >= 64"):
        S.FullFineTune().adapt(A, new, D * D - 1)


# --------------------------------------------------------------------------- adaptive rank
def test_adaptive_rank_is_rrr_at_the_brute_force_risk_minimising_rank(setup, global_random_seed):
    """Rank = argmin_r -sum_{i<=r} lambda_i + 2 s^2 r (2d - r) / n, with lambda and s^2 from
    the raw samples; the update is the brute-force RRR at that rank."""
    fam, new = setup
    A = fam.A_star
    n, r_max = 30, 4
    X, Y = sample_of(new, n, global_random_seed)
    B = np.linalg.lstsq(X, Y - X @ A.T, rcond=None)[0]
    sigma2 = np.sum((Y - X @ A.T - X @ B) ** 2) / (D * (n - D))
    _, lam = brute_rrr(X, Y, A, 0)
    r = np.arange(r_max + 1)
    risk = -np.r_[0.0, np.cumsum(lam[:r_max])] + 2 * sigma2 * r * (2 * D - r) / n
    res = S.AdaptiveRankLoRA().adapt(A, new, 2 * D * r_max, n=n, seed=global_random_seed)
    assert res.info["rank"] == int(np.argmin(risk)) == K  # one signal direction
    assert res.info["noise_var"] == pytest.approx(sigma2, rel=1e-8)
    np.testing.assert_allclose(res.delta, brute_rrr(X, Y, A, K)[0], atol=1e-9)
    assert res.params == 2 * D * K
    # Negative control: without the noise penalty the whole budget is used.
    greedy = S.AdaptiveRankLoRA(noise_var=0.0).adapt(A, new, 2 * D * r_max, n=n,
                                                    seed=global_random_seed)
    assert greedy.info["rank"] == r_max and greedy.params == 2 * D * r_max


def test_adaptive_rank_in_the_population_keeps_the_residual_rank(setup):
    """Population: every direction of non-zero salience within the budget, no more."""
    fam, new = setup
    for A, rank in ((fam.A_star, K), (lt.standard_retraining(fam), K * (T + 1))):
        res = S.AdaptiveRankLoRA().adapt(A, new, 2 * D * (K * (T + 1) + 1))
        assert res.info["rank"] == rank and res.loss < 1e-20
    with pytest.raises(ValueError, match="n > d"):
        S.AdaptiveRankLoRA().adapt(fam.A_star, new, 2 * D, n=D, seed=0)


def test_adaptive_rank_beats_the_full_budget_at_small_n():
    """Averaged over draws, a rank-k truth fitted on few samples: pruning to the salient
    directions has lower excess loss than spending the whole budget (the penalty's purpose)."""
    adaptive, fixed = [], []
    for seed in range(8):
        fam = TaskFamily.random(D, 1, 3, sigma=0.5, seed=seed)
        new = fam.new_task(seed=50 + seed)
        adaptive.append(S.AdaptiveRankLoRA().adapt(fam.A_star, new, 2 * D * 4, n=20, seed=seed).loss)
        fixed.append(S.FixedRankLoRA().adapt(fam.A_star, new, 2 * D * 4, n=20, seed=seed).loss)
    assert np.mean(adaptive) < 0.6 * np.mean(fixed)


# --------------------------------------------------------------------------- mixture
def mixture_problem(fam, new, n, seed):
    """LoRA-ML's base and adapters, the sample, and the design of the weights on raw samples."""
    fit = lt.fit_lora_ml(fam, K)
    X, Y = sample_of(new, n, seed)
    return fit.A, fit.deltas, X, Y, np.stack([(X @ Dt.T).ravel() for Dt in fit.deltas], axis=1)


def test_mixture_weights_match_a_least_squares_solve_on_raw_samples(setup, global_random_seed):
    """With budget m (no fresh rank), c = argmin_c sum_i ||y_i - (A + sum_t c_t D_t) x_i||^2,
    solved here by lstsq on the vectorised samples."""
    fam, new = setup
    n = 40
    A, Ds, X, Y, design = mixture_problem(fam, new, n, global_random_seed)
    c_ref = np.linalg.lstsq(design, (Y - X @ A.T).ravel(), rcond=None)[0]
    res = S.MixtureOfAdapters(Ds).adapt(A, new, T, n=n, seed=global_random_seed)
    assert res.info["rank"] == 0 and res.params == T
    np.testing.assert_allclose(res.delta, np.tensordot(c_ref, Ds, axes=1), rtol=1e-8, atol=1e-10)
    # Negative control: uniform weights are not the least-squares solution.
    assert not np.allclose(np.tensordot(np.full(T, 1 / T), Ds, axes=1), res.delta, atol=1e-3)


def test_mixture_with_a_fresh_adapter_is_a_joint_stationary_point(setup, global_random_seed):
    """At the optimum the weights are the least squares given the fresh adapter and the fresh
    adapter is the brute-force RRR given the weights (raw samples)."""
    fam, new = setup
    n = 60
    A, Ds, X, Y, design = mixture_problem(fam, new, n, global_random_seed)

    def stationarity(res):
        c = np.asarray(res.info["weights"])
        mix = np.tensordot(c, Ds, axes=1)
        fresh = res.delta - mix
        c_ls = np.linalg.lstsq(design, (Y - X @ (A + fresh).T).ravel(), rcond=None)[0]
        return (np.abs(c - c_ls).max() / np.abs(c_ls).max(),
                np.abs(fresh - brute_rrr(X, Y, A + mix, 2)[0]).max())

    res = S.MixtureOfAdapters(Ds).adapt(A, new, T + 2 * D * 2, n=n, seed=global_random_seed)
    assert res.info["rank"] == 2 and res.params == T + 4 * D
    dc, dfresh = stationarity(res)
    assert dc < 1e-4 and dfresh < 1e-8
    fresh_only = S.FixedRankLoRA().adapt(A, new, 2 * D * 2, n=n, seed=global_random_seed)
    loss = lambda W: np.mean(np.sum((Y - X @ W.T) ** 2, axis=1))  # noqa: E731
    assert loss(res.W) <= loss(fresh_only.W) + 1e-12
    # Negative control: one BFGS step is not yet stationary.
    first = S.MixtureOfAdapters(Ds, max_iter=1).adapt(A, new, T + 4 * D, n=n,
                                                      seed=global_random_seed)
    assert stationarity(first)[0] > 1e-3


def test_mixture_without_adapters_is_exact_lora(setup):
    """Standard retraining has no per-task adapters: the fresh adapter alone."""
    fam, new = setup
    A = lt.standard_retraining(fam)
    res = S.MixtureOfAdapters().adapt(A, new, 2 * D * 2, n=30, seed=1)
    ref = S.FixedRankLoRA().adapt(A, new, 2 * D * 2, n=30, seed=1)
    np.testing.assert_allclose(res.delta, ref.delta, atol=1e-10)
    assert res.info["n_adapters"] == 0 and res.params == 4 * D


# --------------------------------------------------------------------------- subspace init
def test_subspace_init_is_the_projected_truncation_and_costs_exactly_its_norm(setup):
    """beta = 1, no steps, population: Delta = trunc_r(P R P) (numpy SVD of the projected
    residual, P the projector off the offsets' span), and each retraining task's loss grows
    by exactly ||Delta||_F^2 since the cross term <Delta, W*_t - A> vanishes."""
    fam, new = setup
    A = lt.standard_retraining(fam)
    Q = np.linalg.qr(np.concatenate(list(fam.U_star), axis=1))[0]
    P = np.eye(D) - Q @ Q.T
    U, s, Vt = np.linalg.svd(P @ (new.W_star[0] - A) @ P)
    rank = 2
    res = S.SubspaceInit(beta=1.0, steps=0).adapt(A, new, 2 * D * rank, preserve=fam)
    np.testing.assert_allclose(res.delta, (U[:, :rank] * s[:rank]) @ Vt[:rank], atol=1e-10)
    assert res.info["preserve_dim"] == K * T
    assert np.abs(Q.T @ res.delta).max() < 1e-10 and np.abs(res.delta @ Q).max() < 1e-10
    increase = res.preserve_loss - res.base_preserve_loss
    np.testing.assert_allclose(increase, np.sum(res.delta**2), rtol=1e-9)
    # Negative control: without the projection the cross terms are there.
    free = S.SubspaceInit(beta=0.0, steps=0).adapt(A, new, 2 * D * rank, preserve=fam)
    assert np.abs(free.preserve_loss - free.base_preserve_loss - np.sum(free.delta**2)).max() > 1e-3


def test_subspace_init_trades_fit_for_forgetting_and_descends(setup):
    """More projection: less forgetting, worse fit (population, no steps); gradient steps
    then lower the new-task loss."""
    fam, new = setup
    A = lt.standard_retraining(fam)
    runs = [S.SubspaceInit(beta=b, steps=0).adapt(A, new, 4 * D, preserve=fam) for b in (0, 1)]
    assert runs[1].forgetting < runs[0].forgetting and runs[1].loss > runs[0].loss
    stepped = S.SubspaceInit(beta=1.0, steps=50).adapt(A, new, 4 * D, preserve=fam)
    assert stepped.loss < runs[1].loss
    # Without a preserve set the projection is empty: beta does not matter.
    a, b = (S.SubspaceInit(beta=x, steps=0).adapt(A, new, 4 * D) for x in (0.0, 1.0))
    np.testing.assert_array_equal(a.delta, b.delta)


def test_preserve_subspaces_have_the_offsets_dimension(setup):
    fam, _ = setup
    for A in (fam.A_star, lt.standard_retraining(fam)):
        Q_out, Q_in = S.preserve_subspaces(statistics(fam), A)
        assert Q_out.shape == Q_in.shape == (D, K * T)
        span = np.linalg.qr(np.concatenate(list(fam.U_star), axis=1))[0]
        np.testing.assert_allclose(Q_out @ Q_out.T, span @ span.T, atol=1e-10)
    assert S.preserve_subspaces(statistics(fam), fam.A_star, rank=1)[0].shape == (D, 1)


# --------------------------------------------------------------------------- interpolation
def test_interpolation_weight_is_the_minimiser_of_the_parabola(setup):
    """The 1-D closed form against a dense grid of held-out losses on raw samples."""
    fam, new = setup
    A = fam.A_star
    X, Y = sample_of(new, 30, 4)
    stats = statistics(new.sample(30, seed=np.random.default_rng(4)))
    delta = new.W_star[0] - A + 0.3 * np.random.default_rng(0).standard_normal((D, D))
    grid = np.linspace(0, 1, 20001)
    losses = [np.sum((Y - X @ (A + a * delta).T) ** 2) for a in grid]
    assert S.interpolation_weight(stats, A, delta) == pytest.approx(grid[np.argmin(losses)],
                                                                     abs=1e-4)
    assert S.interpolation_weight(stats, A, -delta) == 0.0  # clipped at 0
    assert S.interpolation_weight(stats, A, np.zeros((D, D))) == 0.0


@pytest.mark.parametrize("inner,folds", [("full", 5), ("full", 24), ("lora", 4)])
def test_cross_validated_weight_matches_a_brute_force_held_out_search(inner, folds):
    """alpha = argmin over a grid of sum_f sum_{i in f} ||y_i - (A + a Delta_f) x_i||^2 with
    Delta_f fitted by numpy on the other folds; the update is refitted on all samples."""
    fam = TaskFamily.random(D, K, T, sigma=1.0, seed=1)
    new = fam.new_task(seed=2)
    A, n, rank = fam.A_star, 24, 2
    X, Y = sample_of(new, n, 5)

    def fit(Xf, Yf):
        if inner == "full":
            return np.linalg.lstsq(Xf, Yf - Xf @ A.T, rcond=None)[0].T
        return brute_rrr(Xf, Yf, A, rank)[0]

    grid = np.linspace(0, 1, 20001)
    held_out = np.zeros_like(grid)
    for block in np.array_split(np.arange(n), folds):
        keep = np.setdiff1d(np.arange(n), block)
        F = X[block] @ fit(X[keep], Y[keep]).T
        Z = Y[block] - X[block] @ A.T
        held_out += np.sum(Z**2) - 2 * grid * np.sum(F * Z) + grid**2 * np.sum(F**2)
    scheme = S.WeightInterpolation(inner, folds=folds)
    res = scheme.adapt(A, new, D * D if inner == "full" else 2 * D * rank, n=n, seed=5)
    alpha = grid[np.argmin(held_out)]
    assert res.info["alpha"] == pytest.approx(alpha, abs=1e-4)
    assert 0.05 < alpha < 0.999  # the noisy small-n fit is shrunk
    np.testing.assert_allclose(res.delta, res.info["alpha"] * fit(X, Y), atol=1e-9)
    # Negative control: choosing alpha on the training samples themselves gives 1 for the
    # least-squares update (it minimises the training loss).
    if inner == "full":
        stats = statistics(new.sample(n, seed=np.random.default_rng(5)))
        assert S.interpolation_weight(stats, A, fit(X, Y)) == pytest.approx(1.0, abs=1e-9)


def test_interpolation_helps_a_noisy_full_fine_tune_at_small_n():
    """Averaged over draws (sigma = 1, n just above d): shrinking the dense update toward the
    base lowers its excess loss; in the population alpha = 1."""
    full, interp = [], []
    for seed in range(8):
        fam = TaskFamily.random(D, K, T, sigma=1.0, seed=seed)
        new = fam.new_task(seed=30 + seed)
        full.append(S.FullFineTune().adapt(fam.A_star, new, D * D, n=14, seed=seed).loss)
        interp.append(S.WeightInterpolation().adapt(fam.A_star, new, D * D, n=14, seed=seed).loss)
    assert np.mean(interp) < 0.8 * np.mean(full)
    fam = TaskFamily.random(D, K, T, seed=0)
    res = S.WeightInterpolation().adapt(fam.A_star, fam.new_task(seed=1), D * D)
    assert res.info["alpha"] == 1.0 and res.params == D * D
    # The dense update costs d^2 whatever the budget's rank.
    with pytest.raises(ValueError, match=f"budget must be >= {D * D}"):
        S.WeightInterpolation().adapt(fam.A_star, fam.new_task(seed=1), D * D - 1)


# --------------------------------------------------------------------------- perturbation
def explicit_perturbation(a, b, rho, c):
    """max <a, E> s.t. ||E|| = rho, <b, E> <= c: the Lagrangian solution written out."""
    a_hat = a / np.linalg.norm(a)
    if rho * np.sum(b * a_hat) <= c:
        return rho * a_hat
    b_hat = b / np.linalg.norm(b)
    perp = a - np.sum(a * b_hat) * b_hat
    coef = c / np.linalg.norm(b)
    return coef * b_hat + np.sqrt(rho**2 - coef**2) * perp / np.linalg.norm(perp)


def test_optimised_perturbation_is_the_explicit_lagrangian_solution(setup):
    """Population, identity covariance: on the sphere both losses are rho^2 plus a linear term,
    so E* = explicit formula in the gradients a (harmful) and b (new task)."""
    fam, new = setup
    harmful = fam.new_task(seed=999)
    A = lt.standard_retraining(fam)
    rho, eps = 1.0, 0.5
    res = S.PostPerturbation(S.FixedRankLoRA(), harmful, rho, epsilon=eps).adapt(A, new, 2 * D)
    W = A + S.FixedRankLoRA().adapt(A, new, 2 * D).delta
    a, b = 2 * (W - harmful.W_star[0]), 2 * (W - new.W_star[0])
    E_ref = explicit_perturbation(a, b, rho, eps - rho**2)
    E = res.W - W
    np.testing.assert_allclose(E, E_ref, atol=1e-7)
    assert np.linalg.norm(E) == pytest.approx(rho, rel=1e-10)
    gain = frob_loss(W + E, harmful.W_star[0]) - frob_loss(W, harmful.W_star[0])
    lost = frob_loss(W + E, new.W_star[0]) - frob_loss(W, new.W_star[0])
    assert res.info["harmful_gain"] == pytest.approx(gain, rel=1e-9)
    assert res.info["task_loss_lost"] == pytest.approx(lost, rel=1e-9)
    assert lost <= eps + 1e-8
    # Negative control: the unconstrained ascent direction breaks the new-task budget.
    assert np.sum(b * rho * a / np.linalg.norm(a)) + rho**2 > eps


def test_sphere_maximiser_beats_an_independent_optimiser(rng):
    """General quadratic (K indefinite): the secular-equation solution is at least as good as
    the best of SLSQP from many starts, and lies on the sphere; hard case G = 0 included."""
    d, rho = 3, 0.7
    M = rng.standard_normal((d, d))
    K_mat = (M + M.T) / 2
    G = rng.standard_normal((d, d))
    f = lambda x: np.sum((x.reshape(d, d) @ K_mat) * x.reshape(d, d)) + np.sum(G * x.reshape(d, d))  # noqa: E731
    best = -np.inf
    for _ in range(20):
        x0 = rng.standard_normal(d * d)
        out = scipy.optimize.minimize(lambda x: -f(x), rho * x0 / np.linalg.norm(x0),
                                      method="SLSQP",
                                      constraints={"type": "eq", "fun": lambda x: x @ x - rho**2})
        if out.success:  # evaluated on the sphere: SLSQP meets the constraint only to ~1e-7
            best = max(best, f(rho * out.x / np.linalg.norm(out.x)))
    E = S.sphere_maximiser(K_mat, G, rho)
    assert np.linalg.norm(E) == pytest.approx(rho, rel=1e-10)
    assert f(E.ravel()) >= best - 1e-8
    hard = S.sphere_maximiser(K_mat, np.zeros((d, d)), rho)
    assert np.linalg.norm(hard) == pytest.approx(rho)
    assert np.sum((hard @ K_mat) * hard) == pytest.approx(rho**2 * np.linalg.eigvalsh(K_mat)[-1],
                                                          rel=1e-10)
    # Negative control: a random point of the sphere is worse.
    Z = rng.standard_normal((d, d))
    assert f(rho * Z.ravel() / np.linalg.norm(Z)) < f(E.ravel())


def test_random_perturbation_has_norm_rho_and_gains_less(setup):
    fam, new = setup
    harmful = fam.new_task(seed=7)
    inner = S.FixedRankLoRA()
    rand = S.PostPerturbation(inner, harmful, 0.5, kind="random").adapt(fam.A_star, new, 2 * D,
                                                                       seed=3)
    opt = S.PostPerturbation(inner, harmful, 0.5).adapt(fam.A_star, new, 2 * D, seed=3)
    W = fam.A_star + inner.adapt(fam.A_star, new, 2 * D).delta
    assert np.linalg.norm(rand.W - W) == pytest.approx(0.5)
    assert opt.info["harmful_gain"] > rand.info["harmful_gain"]
    assert rand.params == opt.params == 2 * D


def test_infeasible_budget_is_reported(setup):
    fam, new = setup
    res = S.PostPerturbation(S.FixedRankLoRA(), fam.new_task(seed=7), 1.0, epsilon=-1e3).adapt(
        fam.A_star, new, 2 * D)
    assert res.info["feasible"] == 0.0


# --------------------------------------------------------------------------- theory hooks
class TruthScheme(S.AdaptationScheme):
    """A stub that claims 2d parameters but returns the exact update W* - A."""

    name = "truth-stub"

    def update(self, problem):
        return S.Update(problem.task.W_star[0] - problem.base, 2 * problem.d, {})


def test_sr_floor_across_schemes_holds_and_catches_a_cheating_scheme(setup):
    fam, new = setup
    check = S.check_sr_floor_across_schemes(fam, new)
    assert check.holds and check.margin > 0
    assert check.predicted == pytest.approx(S.rank_floor(lt.standard_retraining(fam), new, K * T))
    assert check.measured >= check.predicted * (1 - 1e-9)
    bad = S.check_sr_floor_across_schemes(fam, new, schemes=[TruthScheme()])
    assert not bad.holds and bad.margin < 0


def test_rank_k_suffices_from_lora_ml_and_not_from_a_broken_scheme(setup):
    fam, new = setup
    check = S.check_rank_k_suffices(fam, new)
    assert check.holds and check.measured < 1e-9
    lazy = S.check_rank_k_suffices(fam, new, schemes=[S.SubspaceInit(beta=1.0, steps=0)])
    assert not lazy.holds


def test_sr_crossing_is_at_rank_k_times_T_plus_one(setup):
    fam, new = setup
    check = S.check_sr_crossing(fam, new)
    assert check.holds and check.measured == 2 * D * K * (T + 1)
    mixture = S.check_sr_crossing(fam, new, S.MixtureOfAdapters())
    assert mixture.holds
    # Negative control: a scheme that never leaves the preserved subspace never crosses.
    assert not S.check_sr_crossing(fam, new, S.SubspaceInit(beta=1.0, steps=0)).holds


def test_rank_floor_is_eckart_young_and_crossing_budget_picks_the_first():
    fam = TaskFamily.random(6, 1, 2, seed=3)
    new = fam.new_task(seed=4)
    A = lt.standard_retraining(fam)
    s = np.linalg.svd(new.W_star[0] - A, compute_uv=False)
    for r in range(4):
        assert S.rank_floor(A, new, r) == pytest.approx(np.sum(s[r:] ** 2))
    assert S.crossing_budget([10, 20, 30], [3.0, 1.0, 0.5], 1.0) == 20
    assert S.crossing_budget([10, 20], [3.0, 2.0], 1.0) is None
