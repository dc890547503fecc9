"""Tests of simulations/vary.py: the paper's linear experiment as the authors ran it.

Each piece is compared with something independent of it: the batched retraining with the
per-sample reference (``lowrank_theory.reference``, which shares no code with the library), the
batched fine-tuning with the core's one-run solver, the plotted quantity with a per-sample sum, the
authors' SR baseline with a per-sample transcription of their step and with its closed-form
limit, the ground-truth schemes with slices of one draw. Every comparison has a control that
must fail.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from lowrank_theory.simulations.configs import VARY_FT_STEPS, VaryConfig
from lowrank_theory.simulations.streams import stream_seeds
from lowrank_theory.simulations.vary import (
    AUTHORS_SR,
    RECORD_LINEAR_POINTS,
    RECORD_LOG_POINTS,
    authors_sr_baseline,
    authors_sr_limit,
    draw_vary,
    insample_error,
    paper_protocol_batch,
    record_iterations,
    run_vary,
)

import lowrank_theory as lt
from lowrank_theory.reference import paper_protocol_per_sample

#: A small config that runs in well under a second.
SMALL = VaryConfig(d=4, T=3, N=60, n=30, k=1, rounds=30, ft_steps=50)


def _rows(table, seed, method):
    return table[(table["seed"] == seed) & (table["method"] == method)].reset_index(drop=True)


# --------------------------------------------------------------------------- recording
@pytest.mark.parametrize("steps", [1, 7, 1000, 1400, 10_000])
def test_record_iterations_keep_the_ends_and_a_few_hundred_between(steps):
    """Sorted, distinct, within [0, steps], with 0, steps and every sweep's horizon below it."""
    it = record_iterations(steps, extra=tuple(VARY_FT_STEPS.values()))
    assert it[0] == 0 and it[-1] == steps
    assert np.all(np.diff(it) > 0)
    assert set(h for h in VARY_FT_STEPS.values() if h <= steps) <= set(it.tolist())
    assert len(it) <= min(steps + 1, RECORD_LOG_POINTS + RECORD_LINEAR_POINTS + 5)
    if steps <= 7:
        assert it.tolist() == list(range(steps + 1))
    else:  # evenly spaced points: no gap wider than 1% of the run (plus rounding)
        assert np.diff(it).max() <= steps / RECORD_LINEAR_POINTS + 1


# --------------------------------------------------------------------------- retraining
def test_batched_paper_protocol_matches_the_per_sample_reference(global_random_seed):
    """Stacking runs on a batch axis gives each run's base as the per-sample reference computes
    it (lowrank_theory.reference shares no code with the batched protocol); the control, one
    round fewer, does not agree."""
    fam = lt.TaskFamily.random(d=5, k=1, T=3, seed=global_random_seed)
    datas = [fam.sample(50, seed=s) for s in (10, 11)]
    seeds = [global_random_seed, global_random_seed + 7]
    batch = paper_protocol_batch(datas, 1, seeds, rounds=40)
    for data, seed, A in zip(datas, seeds, batch):
        A_ref, _ = paper_protocol_per_sample(data, 1, seed=seed, rounds=40)
        np.testing.assert_allclose(A, A_ref, rtol=1e-12, atol=1e-12)
        A_short, _ = paper_protocol_per_sample(data, 1, seed=seed, rounds=39)
        assert np.abs(A - A_short).max() > 1e-6


def _authors_sr_per_sample(data, U0, rounds, lr):
    """The authors' SR step written from their script's equations on the pooled sample matrices
    (columns are samples): A <- A - lr sum_t ((A + U_t U_t^T) X - Y) X^T / (N T)."""
    T, N, d = data.X.shape
    X = np.concatenate(list(data.X), axis=0).T  # (d, T N)
    Y = np.concatenate(list(data.Y), axis=0).T
    A = np.zeros((d, d))
    for _ in range(rounds):
        grad = sum(((A + U0[t] @ U0[t].T) @ X - Y) @ X.T for t in range(T))
        A = A - lr * grad / (N * T)
    return A


def test_authors_sr_baseline_is_their_step_and_converges_to_its_closed_form(global_random_seed):
    """The batched baseline takes the authors' steps (per-sample transcription, a few rounds),
    and after their 3000 rounds sits at pooled least squares minus mean U0 U0^T."""
    rng = np.random.default_rng(global_random_seed)
    fam = lt.TaskFamily.random(d=5, k=1, T=3, seed=rng)
    datas = [fam.sample(40, seed=rng) for _ in range(2)]
    starts = [0.1 * rng.standard_normal((3, 5, 1)) for _ in range(2)]
    few = authors_sr_baseline(datas, starts, rounds=5)
    for data, U0, A in zip(datas, starts, few):
        np.testing.assert_allclose(A, _authors_sr_per_sample(data, U0, 5, 0.03), rtol=1e-12,
                                   atol=1e-12)
    limit = np.stack([authors_sr_limit(data, U0) for data, U0 in zip(datas, starts)])
    full = authors_sr_baseline(datas, starts)
    scale = np.linalg.norm(limit)
    assert np.linalg.norm(full - limit) < 1e-10 * scale
    # Controls: the limit is not pooled least squares (the bias is the mean U0 U0^T, of size
    # ~0.01 here), and a short run is far from it, so both comparisons can fail.
    pooled = np.stack([lt.standard_retraining(data) for data in datas])
    assert np.linalg.norm(full - pooled) > 1e-4 * scale
    assert np.linalg.norm(few - limit) > 1e-2 * scale


# --------------------------------------------------------------------------- plotted quantity
def test_insample_error_is_the_sum_over_samples(rng):
    """n tr(R Sxx R^T) = sum_i ||R x_i||^2, the authors' plotted (noise-free) quantity."""
    X = rng.standard_normal((37, 4))
    R = rng.standard_normal((4, 4))
    direct = sum(float(np.sum((R @ x) ** 2)) for x in X)
    assert insample_error(R, X.T @ X / 37, 37) == pytest.approx(direct, rel=1e-12)
    # Control: the mean over samples (the population-like scale) is n times smaller.
    assert insample_error(R, X.T @ X / 37, 1) != pytest.approx(direct, rel=1e-3)


def test_vary_rows_are_the_core_fine_tuning_of_the_core_bases():
    """Per-seed family: each row set is lt.fine_tune(method="gd", convention="paper") from
    fit_lora_ml(method="paper") or standard_retraining, recorded at record_iterations; the
    in-sample column is the per-sample sum over the reconstructed fine-tuning inputs."""
    config = dataclasses.replace(SMALL, family="per-seed")
    table = run_vary(config, (3,))
    st = stream_seeds(3, ("family", "sample", "new_task", "init", "fine_tune"))
    fam = lt.TaskFamily.random(config.d, config.k, config.T, config.sigma, seed=st["family"])
    data = fam.sample(config.N, seed=st["sample"])
    new = fam.new_task(seed=st["new_task"])
    X = new.sample(config.n, seed=np.random.default_rng(st["fine_tune"])).X[0]
    bases = {"LoRA-ML": lt.fit_lora_ml(data, config.k, method="paper", seed=st["init"],
                                       max_iter=config.rounds).A,
             "SR": lt.standard_retraining(data)}
    record = record_iterations(config.ft_steps)
    for method, A in bases.items():
        rows = _rows(table, 3, method)
        ft = lt.fine_tune(A, new, rank=config.ft_rank, n=config.n, seed=st["fine_tune"],
                          method="gd", steps=config.ft_steps, lr=config.ft_lr,
                          convention="paper")
        np.testing.assert_array_equal(rows["iteration"], record)
        np.testing.assert_allclose(rows["test_loss"], ft.history[record], rtol=1e-10)
        R = A + ft.delta - new.W_star[0]
        direct = sum(float(np.sum((R @ x) ** 2)) for x in X)
        assert rows["insample_error"].iloc[-1] == pytest.approx(direct, rel=1e-10)
        assert rows["base_error"].iloc[0] == pytest.approx(
            lt.metrics.base_error(A, fam.A_star, relative=True), rel=1e-12)
        # Control: the "sum" convention's steps are twice as long, a different curve.
        other = lt.fine_tune(A, new, rank=config.ft_rank, n=config.n, seed=st["fine_tune"],
                             method="gd", steps=config.ft_steps, lr=config.ft_lr,
                             convention="sum")
        assert not np.allclose(rows["test_loss"], other.history[record], rtol=1e-3)


# --------------------------------------------------------------------------- ground truth
def test_per_run_ground_truth_is_slices_of_one_draw_shared_by_every_seed():
    """family="per-run": A*, the offsets, the new task and the fine-tuning start of every
    config are slices of one draw, the same for every seed; only samples and starts vary."""
    big = draw_vary(VaryConfig(d=20, T=5, k=3), 0)
    for config in (VaryConfig(d=5), VaryConfig(T=2), VaryConfig(k=2), VaryConfig(d=20, T=5)):
        for seed in (0, 1):
            small = draw_vary(config, seed)
            d, T, k, r = config.d, config.T, config.k, config.ft_rank
            np.testing.assert_array_equal(small.family.A_star, big.family.A_star[:d, :d])
            np.testing.assert_array_equal(small.family.U_star, big.family.U_star[:T, :d, :k])
            np.testing.assert_array_equal(small.new_task.U_star, big.new_task.U_star[:, :d, :k])
            for f, g in zip(small.ft_start, big.ft_start):
                np.testing.assert_array_equal(f, g[:d, :r])
    one, two = draw_vary(VaryConfig(), 0), draw_vary(VaryConfig(), 1)
    assert not np.allclose(one.data.X, two.data.X)
    assert one.init_seed != two.init_seed
    # Another family_seed is another ground truth.
    other = draw_vary(VaryConfig(family_seed=1), 0)
    assert not np.allclose(other.family.A_star, one.family.A_star)


def test_per_seed_ground_truth_is_fresh_for_every_seed_and_shape():
    """Control of the nesting test: family="per-seed" draws are not slices of each other."""
    small = draw_vary(VaryConfig(d=5, family="per-seed"), 0)
    big = draw_vary(VaryConfig(d=20, family="per-seed"), 0)
    assert not np.allclose(small.family.A_star, big.family.A_star[:5, :5])
    again = draw_vary(VaryConfig(d=5, family="per-seed"), 1)
    assert not np.allclose(small.family.A_star, again.family.A_star)


# --------------------------------------------------------------------------- quirks
def test_authors_quirks_change_exactly_the_noise_and_the_sr_baseline():
    """authors_quirks=True = noise sd sigma^2 (same inputs, noise scaled by sigma) plus the
    authors' SR rows; LoRA-ML and pooled SR are then those of sigma -> sigma^2."""
    quirky = dataclasses.replace(SMALL, authors_quirks=True)
    a, b = draw_vary(SMALL, 0), draw_vary(quirky, 0)
    np.testing.assert_array_equal(a.data.X, b.data.X)
    W = a.family.W_star
    noise_a = a.data.Y - a.data.X @ np.swapaxes(W, 1, 2)
    noise_b = b.data.Y - b.data.X @ np.swapaxes(W, 1, 2)
    np.testing.assert_allclose(noise_b, SMALL.sigma * noise_a, rtol=1e-9, atol=1e-12)

    table = run_vary(quirky, (0, 1))
    same_noise = run_vary(dataclasses.replace(SMALL, sigma=SMALL.sigma**2), (0, 1))
    plain = run_vary(SMALL, (0, 1))
    assert set(table["method"]) == {"LoRA-ML", "SR", AUTHORS_SR}
    assert set(plain["method"]) == {"LoRA-ML", "SR"}
    for seed in (0, 1):
        for method in ("LoRA-ML", "SR"):
            pd.testing.assert_frame_equal(_rows(table, seed, method),
                                          _rows(same_noise, seed, method), rtol=1e-12)
    # Control: without the quirks the noise is sigma, and the LoRA-ML rows differ.
    assert not np.allclose(_rows(plain, 0, "LoRA-ML")["test_loss"],
                           _rows(table, 0, "LoRA-ML")["test_loss"], rtol=1e-6)


def test_authors_sr_rows_fine_tune_its_closed_form_base():
    """With the authors' 3000 rounds the SR (authors) base is pooled least squares minus the
    mean U0 U0^T, to 1e-10 relative (its base_error column)."""
    config = dataclasses.replace(SMALL, rounds=3000, ft_steps=1, authors_quirks=True)
    table = run_vary(config, (0,))
    drawn = draw_vary(config, 0)
    want = lt.metrics.base_error(authors_sr_limit(drawn.data, drawn.sr_start),
                                 drawn.family.A_star, relative=True)
    got = _rows(table, 0, AUTHORS_SR)["base_error"].iloc[0]
    assert got == pytest.approx(want, rel=1e-9)
    # Control: pooled least squares (the SR rows) has another error.
    assert _rows(table, 0, "SR")["base_error"].iloc[0] != pytest.approx(want, rel=1e-6)


# --------------------------------------------------------------------------- claims
def test_vary_table_and_claim():
    """T = 3: LoRA-ML's base fine-tunes far below SR's, from the same start and samples."""
    config = VaryConfig(d=5, T=3, N=500, n=200, k=1, rounds=3000, ft_steps=1000)
    table = run_vary(config, (0, 1))
    assert set(table.columns) == {"seed", "method", "iteration", "test_loss", "insample_error",
                                  "base_error"}
    assert len(table) == 2 * 2 * len(record_iterations(1000, tuple(VARY_FT_STEPS.values())))
    final = table[table["iteration"] == config.ft_steps].set_index(["seed", "method"])
    for seed in (0, 1):
        for column in ("test_loss", "insample_error"):
            assert final.loc[(seed, "LoRA-ML"), column] < 0.01 * final.loc[(seed, "SR"), column]
    start = table[table["iteration"] == 0].groupby("seed")["test_loss"]
    # Shared random start: both methods begin from the same adapter, so only the bases differ.
    assert (start.nunique() == 2).all()


def test_t2_gap_of_the_paper_comes_from_its_sr_baseline():
    """T = 2, rank-3k fine-tuning, the authors' noise: their SR baseline stays far above
    LoRA-ML, while pooled least squares reaches the task as LoRA-ML does (Theorem 1's
    corollary: rank k(T + 1) = 3k suffices)."""
    config = VaryConfig(T=2, ft_steps=4000, authors_quirks=True)
    final = run_vary(config, (0,)).query("iteration == 4000").set_index("method")["test_loss"]
    assert final[AUTHORS_SR] > 10 * final["LoRA-ML"]
    assert final["SR"] < 1.5 * final["LoRA-ML"]


@pytest.mark.parametrize("family", ["per-run", "per-seed"])
def test_vary_rows_of_a_seed_do_not_depend_on_its_batch(family):
    """Batching seeds is an implementation detail: seed 1's rows are the same alone or not."""
    config = dataclasses.replace(SMALL, family=family, authors_quirks=True)
    both = run_vary(config, (0, 1))
    alone = run_vary(config, (1,))
    pd.testing.assert_frame_equal(both[both["seed"] == 1].reset_index(drop=True), alone,
                                  rtol=1e-12)


def test_batched_fine_tuning_has_the_divergence_guard():
    """The vary batch runs the core's loop, so a step past the stability limit raises (it used
    to run on silently into NaN); the paper's step on the same batch does not."""
    from lowrank_theory.simulations.vary import fine_tune_batch

    from lowrank_theory.losses import Statistics, statistics

    draw = draw_vary(SMALL, 0)
    one = statistics(draw.ft_data)
    stats = Statistics(one.Sxx[None], one.Sxy[None], one.syy[None])
    A = lt.standard_retraining(draw.data)[None]
    start = tuple(f[None] for f in draw.ft_start)
    with pytest.raises(ValueError, match="diverged with lr=50"):
        fine_tune_batch(A, stats, start, 200, 50.0, [0, 200])
    assert np.isfinite(fine_tune_batch(A, stats, start, 200, SMALL.ft_lr, [0, 200])).all()
