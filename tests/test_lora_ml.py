import tracemalloc
import warnings

import numpy as np
import pytest
from helpers import taylor_slope

import lowrank_theory as lt
from lowrank_theory.lora_ml import STATIONARITY_RTOL, offset_subspace, stationarity
from lowrank_theory.losses import statistics


def _sources(rng):
    fam = lt.TaskFamily.random(d=5, k=2, T=3, sigma=0.1, seed=rng)
    G = rng.standard_normal((5, 5))
    fam_cov = lt.TaskFamily.random(d=5, k=2, T=3, seed=rng, Sigma=G @ G.T + np.eye(5))
    return {"population": fam, "covariance": fam_cov, "sample": fam.sample(30, seed=rng)}


@pytest.mark.parametrize("kind", ["population", "covariance", "sample"])
@pytest.mark.parametrize("asym", [False, True])
def test_gradient_taylor_remainder(rng, kind, asym):
    """The first-order Taylor remainder of the objective shrinks as h^2 along random directions."""
    src = _sources(rng)[kind]
    T, d, r = 3, 5, 2
    A = rng.standard_normal((d, d))
    U = rng.standard_normal((T, d, r))
    V = rng.standard_normal((T, d, r)) if asym else None
    grads = lt.lora_ml_gradient(src, A, U, V)
    shapes = [A.shape, U.shape] + ([V.shape] if asym else [])

    def f(dx):
        return lt.lora_ml_objective(src, A + dx[0], U + dx[1], None if V is None else V + dx[2])

    slope, used = taylor_slope(f, lambda vs: sum(np.sum(g * v) for g, v in zip(grads, vs)), shapes, rng)
    assert used >= 5
    assert slope == pytest.approx(2.0, abs=0.1)


def test_objective_zero_at_truth_and_rotation_invariant(rng):
    fam = lt.TaskFamily.random(d=6, k=2, T=3, seed=rng)
    assert lt.lora_ml_objective(fam, fam.A_star, fam.U_star) == pytest.approx(0.0, abs=1e-20)
    A = rng.standard_normal((6, 6))
    U = rng.standard_normal((3, 6, 2))
    Q = np.linalg.qr(rng.standard_normal((3, 2, 2)))[0]
    assert lt.lora_ml_objective(fam, A, U @ Q) == pytest.approx(lt.lora_ml_objective(fam, A, U), rel=1e-12)


def test_isotropic_fast_path_equals_statistics_path(rng):
    """The per-task loop for Sigma = I agrees with the general statistics computation."""
    fam = lt.TaskFamily.random(d=5, k=1, T=3, seed=rng)
    explicit = lt.TaskFamily(fam.A_star, fam.U_star, fam.sigma, np.eye(5))
    A, U = rng.standard_normal((5, 5)), rng.standard_normal((3, 5, 1))
    assert lt.lora_ml_objective(fam, A, U) == pytest.approx(lt.lora_ml_objective(explicit, A, U), rel=1e-10)
    for g1, g2 in zip(lt.lora_ml_gradient(fam, A, U), lt.lora_ml_gradient(explicit, A, U)):
        np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)


def test_zero_is_stationary(rng):
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=rng)
    _, gU = lt.lora_ml_gradient(fam, rng.standard_normal((4, 4)), np.zeros((3, 4, 1)))
    np.testing.assert_array_equal(gU, 0.0)
    with pytest.raises(ValueError, match="stationary point"):
        lt.fit_lora_ml(fam, k=1, U0=np.zeros((3, 4, 1)))


@pytest.mark.parametrize("adapter", ["symmetric", "asymmetric"])
def test_exact_solver_recovers_base_for_three_tasks(global_random_seed, adapter):
    """Theorem 3: T >= 3 generic offsets, every global minimum has A = A*."""
    fam = lt.TaskFamily.random(d=10, k=1, T=3, seed=global_random_seed)
    fit = lt.fit_lora_ml(fam, k=1, adapter=adapter, seed=0)
    assert fit.converged
    assert lt.metrics.base_error(fit.A, fam.A_star, relative=True) < 1e-6
    if adapter == "symmetric":
        np.testing.assert_allclose(lt.metrics.offset_error(fit.U, fam.U_star), 0.0, atol=1e-6)
    assert fit.objective == pytest.approx(lt.lora_ml_objective(fam, fit.A, fit.U, fit.V), abs=1e-12)
    assert np.all(np.diff(fit.history[: 5]) <= 1e-12)  # alternating steps never increase F


def test_exact_solver_general_covariance_and_sample(global_random_seed):
    rng = np.random.default_rng(global_random_seed)
    G = rng.standard_normal((6, 6))
    fam = lt.TaskFamily.random(d=6, k=1, T=4, seed=rng, Sigma=G @ G.T / 6 + np.eye(6))
    fit = lt.fit_lora_ml(fam, k=1, seed=0)
    assert lt.metrics.base_error(fit.A, fam.A_star, relative=True) < 1e-5
    data = fam.sample(4000, seed=1)
    fit_d = lt.fit_lora_ml(data, k=1, seed=0)
    assert fit_d.grad_norm < 1e-5
    # The sample optimum is within sampling error of the truth and beats the truth's loss.
    assert lt.metrics.base_error(fit_d.A, fam.A_star, relative=True) < 0.05
    assert fit_d.objective <= lt.lora_ml_objective(data, fam.A_star, fam.U_star) + 1e-12


def test_span_reduction_keeps_iterates_in_offset_span(rng):
    """With Sigma = I the exact solver's A - A* and U live in span(U*) (docstring proof)."""
    fam = lt.TaskFamily.random(d=40, k=2, T=4, seed=rng)
    Q = offset_subspace(fam)
    assert Q.shape == (40, 8)
    fit = lt.fit_lora_ml(fam, k=2, seed=0)
    P = np.eye(40) - Q @ Q.T
    np.testing.assert_allclose(P @ (fit.A - fam.A_star), 0.0, atol=1e-10)
    np.testing.assert_allclose(P @ fit.U, 0.0, atol=1e-10)


def test_span_reduction_memory_stays_a_few_d_by_d():
    """Peak extra memory of the exact solver at d=600, T=20 is far below one T x d x d array."""
    d, T, k = 600, 20, 3
    fam = lt.TaskFamily.random(d=d, k=k, T=T, seed=0)
    tracemalloc.start()
    fit = lt.fit_lora_ml(fam, k=k, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    dd = d * d * 8
    assert peak < 4 * dd  # a T x d x d array would be T * dd = 20 * dd
    assert lt.metrics.base_error(fit.A, fam.A_star, relative=True) < 1e-6


@pytest.mark.parametrize("convention", ["paper", "sum"])
def test_paper_protocol_and_exact_agree_on_the_sample_optimum(convention):
    fam = lt.TaskFamily.random(d=6, k=1, T=3, seed=3)
    data = fam.sample(2000, seed=4)
    paper = lt.fit_lora_ml(data, k=1, method="paper", seed=0, convention=convention)
    exact = lt.fit_lora_ml(data, k=1, seed=0)
    assert exact.converged
    assert paper.objective == pytest.approx(exact.objective, rel=1e-6)
    np.testing.assert_allclose(paper.A, exact.A, atol=1e-4)
    assert paper.history.shape == (3001,)


def test_lbfgs_method_reaches_a_global_minimum():
    fam = lt.TaskFamily.random(d=6, k=1, T=3, seed=1)
    fit = lt.fit_lora_ml(fam, k=1, method="lbfgs", seed=0)
    assert fit.objective < 1e-10
    assert lt.metrics.base_error(fit.A, fam.A_star, relative=True) < 1e-4


def test_fit_is_deterministic_for_a_seed():
    data = lt.TaskFamily.random(d=5, k=1, T=3, seed=0).sample(200, seed=1)
    a = lt.fit_lora_ml(data, k=1, method="paper", seed=5, max_iter=30)
    b = lt.fit_lora_ml(data, k=1, method="paper", seed=5, max_iter=30)
    np.testing.assert_array_equal(a.A, b.A)


def test_fit_argument_errors():
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=0)
    with pytest.raises(ValueError, match="method must be one of"):
        lt.fit_lora_ml(fam, k=1, method="newton")
    with pytest.raises(ValueError, match="rank must be <= d"):
        lt.fit_lora_ml(fam, k=5)
    with pytest.raises(ValueError, match="rank k"):
        lt.fit_lora_ml(fam)
    with pytest.raises(ValueError, match="U0 must have shape"):
        lt.fit_lora_ml(fam, k=1, U0=np.ones((2, 4, 1)))
    with pytest.raises(TypeError, match="TaskFamily"):
        lt.fit_lora_ml(np.eye(4), k=1)
    with pytest.raises(ValueError, match="A must have shape"):
        lt.lora_ml_objective(fam, np.eye(3), np.ones((3, 4, 1)))


# --------------------------------------------------------------------------- too few samples
def test_too_few_pooled_samples_is_refused():
    """T * n < d: the pooled design is singular, the answer meaningless; refuse, naming the fix."""
    data = lt.TaskFamily.random(d=5, k=1, T=3, seed=0).sample(1, seed=0)
    for method in lt.lora_ml.METHODS:
        with pytest.raises(ValueError, match="more samples.*population TaskFamily"):
            lt.fit_lora_ml(data, k=1, seed=0, method=method)
    with pytest.raises(ValueError, match="T \\* n = 3 \\* 1 = 3 pooled samples for d = 5"):
        lt.standard_retraining(data)


def test_every_singular_pooled_design_is_refused():
    """Over many random designs with T * n < d, none gives an answer (the Cholesky factor of a
    singular matrix sometimes succeeds on round-off, so the count alone decides)."""
    for seed in range(60):
        rng = np.random.default_rng(seed)
        d = int(rng.integers(3, 9))
        T = int(rng.integers(1, d))
        n = int(rng.integers(1, (d - 1) // T + 1))
        data = lt.TaskFamily.random(d=d, k=1, T=T, seed=seed).sample(n, seed=seed)
        assert T * n < d
        with pytest.raises(ValueError, match="not identified"):
            lt.fit_lora_ml(data, k=1, seed=0)


def test_ill_conditioned_pooled_design_is_refused():
    """Enough samples, but two input coordinates nearly equal: condition number ~1e24."""
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=0)
    X = np.random.default_rng(0).standard_normal((3, 20, 4))
    X[..., 3] = X[..., 2] * (1 + 1e-12)
    data = lt.TaskData(X, X @ np.swapaxes(fam.W_star, 1, 2))
    with pytest.raises(ValueError, match="reciprocal condition number"):
        lt.fit_lora_ml(data, k=1, seed=0)
    with pytest.raises(ValueError, match="reciprocal condition number"):
        lt.standard_retraining(data)
    # Negative control: the same design without the near-collinearity is accepted.
    X[..., 3] = np.random.default_rng(1).standard_normal((3, 20))
    lt.standard_retraining(lt.TaskData(X, X @ np.swapaxes(fam.W_star, 1, 2)))


# --------------------------------------------------------------------------- starts
def test_A0_is_validated_for_every_method_and_refused_by_exact():
    data = lt.TaskFamily.random(d=4, k=1, T=3, seed=0).sample(50, seed=1)
    for method in lt.lora_ml.METHODS:
        with pytest.raises(ValueError, match="A0 contains NaN"):
            lt.fit_lora_ml(data, k=1, method=method, A0=np.full((4, 4), np.nan))
        with pytest.raises(ValueError, match="A0 must have shape"):
            lt.fit_lora_ml(data, k=1, method=method, A0=np.eye(3))
    with pytest.raises(ValueError, match="A0 is not used by method='exact'.*U0"):
        lt.fit_lora_ml(data, k=1, A0=np.eye(4))
    with pytest.raises(ValueError, match="V0 is only for an asymmetric adapter"):
        lt.fit_lora_ml(data, k=1, method="lbfgs", U0=np.ones((3, 4, 1)), V0=np.ones((3, 4, 1)))


@pytest.mark.parametrize("method", ["paper", "lbfgs"])
def test_A0_is_the_start_of_paper_and_lbfgs(method):
    data = lt.TaskFamily.random(d=4, k=1, T=3, seed=0).sample(50, seed=1)
    A0 = np.arange(16.0).reshape(4, 4) / 16
    fit = lt.fit_lora_ml(data, k=1, method=method, A0=A0, seed=0, max_iter=0)
    np.testing.assert_array_equal(fit.A, A0)


@pytest.mark.parametrize("method", ["exact", "paper", "lbfgs"])
@pytest.mark.parametrize("kind", ["population", "sample"])
def test_max_iter_zero_means_no_iteration_and_none_the_default(method, kind):
    fam = lt.TaskFamily.random(d=5, k=1, T=3, seed=0)
    src = fam if kind == "population" else fam.sample(200, seed=1)
    start = lt.fit_lora_ml(src, k=1, method=method, seed=2, max_iter=0)
    assert start.n_iter == 0 and start.history.shape == (1,)
    assert not start.converged
    default = lt.fit_lora_ml(src, k=1, method=method, seed=2)
    assert default.n_iter > 0
    if method != "exact":  # the random start: the same draw, untouched
        U0 = 0.1 * np.random.default_rng(2).standard_normal((3, 5, 1))
        np.testing.assert_array_equal(start.U, U0)
        np.testing.assert_array_equal(start.A, 0.0)
    assert lt.fit_lora_ml(src, k=1, method="paper", seed=2, max_iter=7).n_iter == 7


def test_k_must_be_an_integer_and_the_error_names_k():
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=0)
    for bad in (1.0, "1"):
        with pytest.raises(TypeError, match="^k must be an integer"):
            lt.fit_lora_ml(fam, k=bad)
    with pytest.raises(ValueError, match="convention must be one of"):
        lt.fit_lora_ml(fam, k=1, method="paper", convention="mean")


# --------------------------------------------------------------------------- convergence
def test_converged_is_false_without_iterations_and_true_at_the_optimum(global_random_seed):
    """The flag comes from the gradient at the answer, not from the solver's stopping test."""
    fam = lt.TaskFamily.random(d=6, k=1, T=3, seed=global_random_seed)
    data = fam.sample(500, seed=global_random_seed + 1)
    fit = lt.fit_lora_ml(data, k=1, seed=0)
    assert fit.converged and fit.stationarity <= STATIONARITY_RTOL
    assert fit.grad_norm == pytest.approx(stationarity(statistics(data), fit.adapter, fit.A, fit.factors)[0])
    # Negative control: the same answer nudged by 1e-5 is no longer stationary.
    _, rel = stationarity(statistics(data), fit.adapter, fit.A + 1e-5, fit.factors)
    assert rel > 100 * STATIONARITY_RTOL
    assert not lt.fit_lora_ml(data, k=1, method="paper", seed=0, max_iter=0).converged
    assert not lt.fit_lora_ml(data, k=1, method="paper", seed=0, max_iter=10).converged


def test_exact_solver_on_samples_is_stationary_for_every_seed():
    """scipy stops "ABNORMAL" on the flat sample objective; the answer is still stationary."""
    for seed in range(4):
        data = lt.TaskFamily.random(d=6, k=1, T=3, seed=seed).sample(500, seed=seed)
        fit = lt.fit_lora_ml(data, k=1, seed=0)
        assert fit.converged, fit.message


def test_diverging_paper_protocol_stops_early_and_says_so():
    data = lt.TaskFamily.random(d=6, k=1, T=3, seed=0).sample(500, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning may escape
        fit = lt.fit_lora_ml(data, k=1, method="paper", seed=0, lr_U=0.5, lr_A=0.5)
    assert not fit.converged
    assert "diverged in round" in fit.message and "reduce lr_U and lr_A" in fit.message
    assert fit.n_iter < 3000 and fit.history.shape == (fit.n_iter + 1,)
    # Negative control: the default steps do not diverge.
    ok = lt.fit_lora_ml(data, k=1, method="paper", seed=0, max_iter=50)
    assert "diverged" not in ok.message and np.all(np.isfinite(ok.history))


# --------------------------------------------------------------------------- the span solver
#: A zero-loss answer: its excess objective relative to sum_t ||U*_t U*_t^T||^2.
ZERO_LOSS_RTOL = 1e-20


def _full_space(fam, k, monkeypatch, **kw):
    """fit_lora_ml(reduce=False) given the family's statistics but a decoy family of the same
    shape: whatever it finds, it cannot have read A* or U* (the decoy's are unrelated)."""
    import lowrank_theory.lora_ml as lora_ml

    stats = statistics(fam)
    decoy = lt.TaskFamily.random(d=fam.d, k=fam.k, T=fam.T, seed=12345)
    monkeypatch.setattr(lora_ml, "statistics", lambda source: stats)
    try:
        return lt.fit_lora_ml(decoy, k, reduce=False, **kw)
    finally:
        monkeypatch.undo()


def _scale(fam):
    return float(np.sum(fam.offsets**2))


@pytest.mark.parametrize("T", [1, 2, 3, 5])
def test_span_solver_agrees_with_a_full_space_solver(global_random_seed, monkeypatch, T):
    """The default population solver (span reduction, A = A* + Q b Q^T) against variable
    projection in the full space fed only the tasks' statistics (a decoy family stands in, so
    A* and U* are never read) and L-BFGS from a generic random start: both reach zero excess
    loss. For T >= 3 (independent offset columns, unique minimiser) they agree on A to 1e-8.
    For T <= 2 the minimiser is not unique: each answer satisfies Theorem 2's zero-loss
    identity, A^ - A* = U*_t U*_t^T - U^_t U^_t^T with W*_t - A^ PSD of rank <= k for every
    task, so rank(A^ - A*) <= 2k. Control: the identity fails at a base moved by 1e-3."""
    d, k = 12, 2
    fam = lt.TaskFamily.random(d=d, k=k, T=T, seed=global_random_seed)
    fits = {"span": lt.fit_lora_ml(fam, k=k),
            "full-space": _full_space(fam, k, monkeypatch, seed=global_random_seed),
            "lbfgs": lt.fit_lora_ml(fam, k=k, method="lbfgs", seed=global_random_seed)}
    assert "alternating" in fits["span"].message and "variable projection" in fits["full-space"].message
    for name, fit in fits.items():
        assert lt.lora_ml_objective(fam, fit.A, fit.U) <= ZERO_LOSS_RTOL * _scale(fam), name
    if T >= 3:
        for name in ("full-space", "lbfgs"):
            np.testing.assert_allclose(fits[name].A, fits["span"].A, atol=1e-8 * np.linalg.norm(fam.A_star))
        return
    for name, fit in fits.items():
        for A in (fit.A, fit.A + 1e-3 * np.eye(d)):
            residual = fam.W_star - A  # = U^_t U^_t^T at zero loss
            lam = np.linalg.eigvalsh(residual)
            holds = bool(np.all(lam >= -1e-7) and np.all(lam[:, :-k] <= 1e-7)
                         and np.linalg.matrix_rank(A - fam.A_star, tol=1e-6) <= 2 * k)
            assert holds is (A is fit.A), (name, lam)


def test_span_solver_agrees_under_a_scalar_covariance(monkeypatch):
    """The span solver needs Sigma = I: with a general covariance the weighted U-step leaves
    span(U*) (the best rank-r fit of M Sigma^{1/2} is unwhitened by Sigma^{-1/2}, which mixes
    span(U*) with its complement) and has no closed form for PSD adapters, so no reduction
    applies. Sigma = c I is the non-identity covariance where it still does (the weighted
    objective is c times the plain one): the full-space solver on Sigma = 2.5 I finds the span
    solver's answer on Sigma = I, to 1e-8."""
    fam = lt.TaskFamily.random(d=10, k=1, T=4, seed=3)
    scaled = lt.TaskFamily(fam.A_star, fam.U_star, fam.sigma, 2.5 * np.eye(10))
    span_fit = lt.fit_lora_ml(fam, k=1)
    full = _full_space(scaled, 1, monkeypatch, seed=0)
    np.testing.assert_allclose(full.A, span_fit.A, atol=1e-8 * np.linalg.norm(fam.A_star))
    assert full.objective <= ZERO_LOSS_RTOL * _scale(fam) * 2.5


def test_reduce_false_never_uses_the_span(monkeypatch):
    """reduce=False takes the full-space path even where the span applies (the span's functions
    are made to fail), and is validated as a boolean."""
    import lowrank_theory.span as span

    fam = lt.TaskFamily.random(d=8, k=1, T=3, seed=0)

    def fail(*args, **kwargs):
        raise AssertionError("the span reduction was used")

    monkeypatch.setattr(span, "offset_subspace", fail)
    fit = lt.fit_lora_ml(fam, k=1, reduce=False)
    assert fit.converged and lt.metrics.base_error(fit.A, fam.A_star, relative=True) < 1e-8
    with pytest.raises(AssertionError, match="span reduction was used"):
        lt.fit_lora_ml(fam, k=1)  # control: the default does use it
    with pytest.raises(TypeError, match="reduce must be True or False"):
        lt.fit_lora_ml(fam, k=1, reduce="no")


# --------------------------------------------------------------------------- one function per method
def test_each_method_function_is_its_front_door_path(global_random_seed):
    """fit_exact_general, fit_paper and fit_lbfgs give exactly fit_lora_ml's answers for the
    method they implement, and fit_exact_span the default's on an isotropic population."""
    from lowrank_theory import lora_ml

    fam = lt.TaskFamily.random(d=6, k=1, T=3, seed=global_random_seed)
    data = fam.sample(300, seed=global_random_seed)
    pairs = [
        (lora_ml.fit_exact_span(fam, 1), lt.fit_lora_ml(fam, 1)),
        (lora_ml.fit_exact_general(data, 1, seed=0), lt.fit_lora_ml(data, 1, seed=0)),
        (lora_ml.fit_paper(data, 1, seed=0, max_iter=50),
         lt.fit_lora_ml(data, 1, method="paper", seed=0, max_iter=50)),
        (lora_ml.fit_lbfgs(data, 1, seed=0), lt.fit_lora_ml(data, 1, method="lbfgs", seed=0)),
    ]
    for direct, front in pairs:
        np.testing.assert_array_equal(direct.A, front.A)
        assert direct.method == front.method
    assert not np.array_equal(pairs[1][0].A, pairs[2][0].A)  # control: the methods differ


def test_exact_general_recovers_under_a_general_covariance(global_random_seed):
    """fit_exact_general on Sigma with condition number 100 (T = 4): zero excess loss and A*
    recovered to 1e-8, judged stationary; the paper protocol's 50 rounds are not (control)."""
    from lowrank_theory import lora_ml

    rng = np.random.default_rng(global_random_seed)
    O = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    Sigma = (O * np.geomspace(1, 100, 6)) @ O.T
    fam = lt.TaskFamily.random(d=6, k=1, T=4, seed=rng, Sigma=Sigma)
    fit = lora_ml.fit_exact_general(fam, 1, seed=0)
    assert fit.converged and fit.objective < 1e-18 * _scale(fam)
    assert lt.metrics.base_error(fit.A, fam.A_star, relative=True) < 1e-8
    assert not lora_ml.fit_paper(fam, 1, seed=0, max_iter=50).converged


@pytest.mark.parametrize("scale", [1e-100, 1e-10, 1e50, 1e100])
def test_exact_and_lbfgs_do_not_depend_on_the_data_units(scale):
    """Inputs and outputs scaled by the same factor leave the model unchanged: the exact and
    L-BFGS fits give the unscaled fit's base to 1e-8 and are judged stationary (before the
    power-of-two normalisation they ended NOT stationary at 1e-10 and in a traceback from
    1e100); the objective scales by scale^2."""
    fam = lt.TaskFamily.random(d=6, k=1, T=3, seed=0)
    data = fam.sample(200, seed=1)
    scaled = lt.TaskData(data.X * scale, data.Y * scale)
    for method in ("exact", "lbfgs"):
        ref = lt.fit_lora_ml(data, 1, method=method, seed=0)
        fit = lt.fit_lora_ml(scaled, 1, method=method, seed=0)
        assert fit.converged, (method, fit.message)
        np.testing.assert_allclose(fit.A, ref.A, atol=1e-8 * np.linalg.norm(ref.A))
        assert fit.objective == pytest.approx(scale**2 * ref.objective, rel=1e-6)
