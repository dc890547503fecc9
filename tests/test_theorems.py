"""Property tests: every claim of the paper holds on instances built to satisfy its hypotheses."""

import doctest
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import samples, seeds, task_families

import lowrank_theory as lt
from lowrank_theory import cli, landscape, relaxation
from lowrank_theory import theorems as th


@pytest.fixture(autouse=True)
def _single_threaded_blas():
    """Tiny BLAS calls in optimiser loops are far slower with OpenBLAS threads on 2 cores."""
    with th._single_threaded_blas():
        yield


def _assert_holds(res: th.CheckResult) -> None:
    assert isinstance(res, th.CheckResult)
    assert res.holds, f"{res.name}: {res.detail} (measured {res.measured}, tol {res.tolerance})"
    assert res.margin >= 0


# --------------------------------------------------------------------------- 1-2. SR
@given(task_families(covariance=True))
def test_sr_closed_form_is_global_minimum_population(fam):
    """In the population (any SPD covariance), SR's closed form has zero gradient and matches
    (sum_t W*_t Sigma)(sum_t Sigma)^{-1}."""
    _assert_holds(th.check_sr_global_minimum(fam))


@given(samples())
def test_sr_closed_form_is_global_minimum_sample(data):
    """On a sample, SR's answer has zero gradient and equals pooled least squares on the raw data."""
    _assert_holds(th.check_sr_global_minimum(data))


@given(task_families(T=st.integers(1, 5), d=st.integers(2, 10)))
def test_sr_offset_rank_is_min_kT_d(fam):
    """For generic offsets, rank(A_SR - A*) = min(kT, d)."""
    _assert_holds(th.check_sr_rank(fam))


@given(task_families(T=st.integers(2, 4), d=st.integers(3, 6)), seeds)
def test_sr_fine_tuning_floor_does_not_shrink_with_n(fam, seed):
    """From A_SR, rank-k fine-tuning attains the residual's Eckart-Young tail in the population
    and never goes below it on n samples, for n = 50, 500, 5000."""
    new = fam.new_task(seed=seed)
    _assert_holds(th.check_sr_floor(fam, new, ns=(50, 500, 5000), seed=seed))


# --------------------------------------------------------------------------- 3. truth, symmetry
@given(st.one_of(task_families(), task_families(covariance=True)))
def test_truth_is_global_minimum(fam):
    """The ground truth has zero excess loss and zero gradient (any input covariance)."""
    _assert_holds(th.check_truth_global_minimum(fam))


@given(st.one_of(task_families(), samples()), st.integers(1, 3), seeds)
def test_objective_rotation_invariant(source, rank, seed):
    """F(A, U Q) = F(A, U) for orthogonal Q_t, population and sample."""
    _assert_holds(th.check_rotation_invariance(source, rank=min(rank, source.d), seed=seed))


@given(st.one_of(task_families(), samples()), st.integers(1, 3))
def test_zero_adapters_are_stationary(source, rank):
    """(A_SR, U = 0) is a stationary point."""
    _assert_holds(th.check_zero_is_stationary(source, rank=min(rank, source.d)))


# --------------------------------------------------------------------------- 4. rank <= 2k
@given(
    st.one_of(
        task_families(T=st.integers(1, 4), d=st.integers(2, 5)),
        task_families(T=st.integers(1, 4), d=st.integers(2, 5), covariance=True),
    ),
    seeds,
)
def test_global_minima_from_random_starts_have_rank_at_most_2k(fam, seed):
    """Every global minimum reached from random starts has rank(A^ - A*) <= 2k (any SPD input
    covariance: zero excess loss forces A^ + U^_t U^_t^T = W*_t)."""
    minima, _ = th.global_minima_from_random_starts(fam, fam.k, 2, seed)
    for A, U in minima:
        _assert_holds(th.check_rank_bound(fam, A, U))


def test_rank_bound_refuses_non_global_points():
    """The rank claim is about global minima: other points are refused, not silently checked."""
    fam = lt.TaskFamily.random(d=4, k=1, T=3, seed=0)
    with pytest.raises(ValueError, match="not a global minimum"):
        th.check_rank_bound(fam, np.zeros((4, 4)), np.ones((3, 4, 1)))


# --------------------------------------------------------------------------- 5. T >= 3
@given(
    st.one_of(
        task_families(T=st.integers(3, 4), k=st.integers(1, 2), independent=True),
        task_families(T=st.integers(3, 4), k=st.integers(1, 2), independent=True, covariance=True),
    ),
    seeds,
)
def test_t3_global_minima_recover_truth(fam, seed):
    """T >= 3 with independent offset columns: every global minimum reached (from the SR start
    and from random starts) has A^ = A* and U^_t U^_t^T = U*_t U*_t^T; any other end point is a
    certified non-global stationary point, never a zero-loss point elsewhere."""
    fit = lt.fit_lora_ml(fam, fam.k, seed=seed)
    A, fac, _ = landscape.polish_stationary_point(fam, fit.A, fit.U)
    candidates = [(A, fac[0])]
    minima, _ = th.global_minima_from_random_starts(fam, fam.k, 1, seed)
    tol = th._objective_tolerance(fam)
    for A, U in candidates + minima:
        if lt.lora_ml_objective(fam, A, U) <= tol:
            _assert_holds(th.check_exact_recovery(fam, A, U))
        else:
            assert landscape.certify_stationary_point(fam, A, U).kind != "global minimum"


@given(st.floats(0.05, 0.7))
def test_recovery_fails_without_column_independence(r):
    """d = 2, T = 3: three rank-one offsets independent as matrices but not as vectors admit a
    zero-loss minimum with A^ != A* (informational claim: the demonstration works)."""
    fam, A_hat, U_hat = th.independence_counterexample(r)
    res = th.check_independence_needed(fam, A_hat, U_hat)
    assert res.holds and not res.proven
    assert lt.lora_ml_objective(fam, A_hat, U_hat) < 1e-20
    assert th.check_rank_bound(fam, A_hat, U_hat).holds  # Theorem 2 still holds


def test_independence_counterexample_validates_r():
    """r >= 1/sqrt(2) gives a definite X (no counterexample): refused with the valid range."""
    with pytest.raises(ValueError, match="r must satisfy"):
        th.independence_counterexample(0.8)


# --------------------------------------------------------------------------- 6. T = 2
@given(task_families(T=st.just(2), d=st.integers(2, 6)), st.floats(0.05, 2.0), st.sampled_from([-1, 1]))
def test_t2_hyperbolic_family(fam, s, sign):
    """T = 2: the hyperbolic rotation of the offsets gives a zero-loss minimum with A^ != A*,
    rank(A^ - A*) <= 2k, and a rank-3k adapter still reaches a new task exactly."""
    A_hat, U_hat = th.hyperbolic_minimum(fam, sign * s)
    _assert_holds(th.check_hyperbolic_family(fam, sign * s))
    _assert_holds(th.check_rank_bound(fam, A_hat, U_hat))
    if 3 * fam.k <= fam.d:
        _assert_holds(th.check_rank_3k_fine_tuning(fam, A_hat, fam.new_task(seed=0)))


@given(task_families(T=st.just(2), k=st.integers(1, 2), independent=True), seeds)
def test_t2_stationary_points_are_global_or_strict_saddles(fam, seed):
    """T = 2: every stationary point found (structured ones and zeros of the gradient found by
    minimising ||grad F||^2) is a global minimum or has a negative Hessian eigenvalue.

    The offsets are drawn with bounded conditioning (independent columns, angles bounded away
    from 0): as two offsets approach each other the saddles' negative curvature shrinks to 0
    continuously, below what a numerical certificate can resolve."""
    points = th._structured_stationary_points(fam, fam.k)
    points += landscape.find_stationary_points(fam, fam.k, n_starts=2, seed=seed)
    _assert_holds(th.check_strict_saddle(fam, points))


@given(task_families(T=st.just(2), d=st.integers(2, 5)), seeds)
def test_t2_random_starts_reach_global_minimum(fam, seed):
    """T = 2: L-BFGS from random starts ends at zero loss (no spurious minima to stop at)."""
    _assert_holds(th.check_gradient_finds_global(fam, n_starts=2, seed=seed))


# --------------------------------------------------------------------------- 7. T = 1
@given(task_families(T=st.just(1)), seeds)
def test_t1_base_not_identified(fam, seed):
    """T = 1: distinct bases W*_1 - P (P PSD, rank <= k) all have zero loss."""
    _assert_holds(th.check_t1_nonidentifiable(fam, seed=seed))


# --------------------------------------------------------------------------- 8. spurious minima
def test_catalogued_spurious_minimum_is_certified():
    """The catalogued T = 3 instance has a strict local minimum with positive loss although its
    offsets satisfy the independence condition (so Theorem 3 is about global minima only)."""
    res = th.CHECKS["spurious-minima"][0](0, 0)  # scale 0: the catalogued instance only
    _assert_holds(res)
    assert "independent offsets=True" in res.detail


def test_search_finds_and_certifies_a_spurious_minimum():
    """The random-start search finds a spurious minimum on a known instance and certifies it."""
    fam = lt.TaskFamily.random(d=3, k=1, T=3, seed=30)
    point = th.find_spurious_minimum(fam, n_starts=6, seed=0)
    assert point is not None
    res = th.check_spurious_minimum(fam, *point)
    _assert_holds(res)
    assert lt.lora_ml_objective(fam, *point) > 1e-3


def test_global_minimum_is_not_certified_spurious():
    """The certificate does not call a global minimum (the truth) spurious."""
    fam = lt.TaskFamily.random(d=3, k=1, T=3, seed=0)
    assert not th.check_spurious_minimum(fam, fam.A_star, fam.U_star).holds


# --------------------------------------------------------------------------- 9. rate
@pytest.mark.parametrize("d, k", [(5, 1), (10, 2)])
def test_fine_tuning_rate_from_truth(d, k, global_random_seed):
    """From A*, the reduced-rank-regression excess loss falls as k d sigma^2 / n (slope -1)."""
    _assert_holds(th.check_fine_tuning_rate(d, k, ns=(100, 1000, 10_000), n_seeds=10, seed=global_random_seed))


def test_sr_plateau(global_random_seed):
    """From A_SR, the fine-tuning loss stays at the floor as n grows (slope ~0, not -1)."""
    fam = lt.TaskFamily.random(d=8, k=1, T=3, seed=global_random_seed)
    _assert_holds(th.check_sr_plateau(fam, fam.new_task(seed=1), ns=(100, 1000, 10_000), seed=2))


# --------------------------------------------------------------------------- records, CLI
def test_check_result_margin_sign_matches_holds():
    """Margins are decades of headroom, positive exactly when the claim holds; records serialise to JSON."""
    ok = th._result("x", "c", "r", 0.0, 1e-12, 1e-12, 1e-9)
    bad = th._result("x", "c", "r", 0.0, 1e-6, 1e-6, 1e-9)
    assert ok.holds and ok.margin == pytest.approx(3.0)
    assert not bad.holds and bad.margin == pytest.approx(-3.0)
    assert th._result("x", "c", "r", 0, 0, 0.0, 1e-9).margin == th.MARGIN_CAP
    assert json.loads(json.dumps(ok.to_dict()))["name"] == "x"


def test_aggregate_reports_worst_instance():
    """An aggregate holds iff all instances hold and reports the worst margin."""
    a = th._result("x", "c", "r", 0.0, 1e-12, 1e-12, 1e-9)
    b = th._result("x", "c", "r", 0.0, 1e-10, 1e-10, 1e-9)
    agg = th._aggregate([a, b])
    assert agg.instances == 2 and agg.margin == pytest.approx(1.0) and agg.holds


def test_cli_json_single_check(capsys):
    """--json --only NAME prints one machine-readable record."""
    assert cli.main(["check", "--only", "sr-rank", "--json", "--seed", "3"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == ["sr-rank"]
    assert records[0]["holds"] is True and records[0]["instances"] >= 1


def test_cli_table(capsys):
    """The table lists the checks, marks informational ones, and ends with a summary line."""
    assert cli.main(["check", "--only", "t2-hyperbolic", "--only", "independence-needed"]) == 0
    out = capsys.readouterr().out
    assert "t2-hyperbolic" in out and "(info)" in out and "2/2 checks hold" in out


def test_cli_unknown_check_lists_valid_names(capsys):
    """An unknown --only name exits with status 2 and a message listing the valid names."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", "--only", "no-such-claim"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no-such-claim" in err and "sr-rank" in err and "spurious-minima" in err


def test_run_checks_rejects_unknown_name():
    """The Python entry point rejects unknown names with the list of valid ones."""
    with pytest.raises(ValueError, match="valid names"):
        th.run_checks(only=["nope"])


def test_cli_exit_code_one_when_a_proven_claim_fails(monkeypatch, capsys):
    """Exit status 1 when a proven claim fails; informational checks never fail the run."""
    failing = th._result("sr-rank", "c", "r", 0.0, 1.0, 1.0, 1e-9)
    monkeypatch.setitem(th.CHECKS, "sr-rank", (lambda seed, scale: failing, True, "c"))
    assert cli.main(["check", "--only", "sr-rank"]) == 1
    # An informational check that "fails" does not fail the run.
    monkeypatch.setitem(th.CHECKS, "relaxation", (lambda seed, scale: failing, False, "c"))
    assert cli.main(["check", "--only", "relaxation"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("module", [th, landscape, relaxation])
def test_docstring_examples(module):
    """The Examples sections of theorems, landscape and relaxation run as doctests."""
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
