"""The paper protocol's conventions, its fused step and its divergence guard."""

import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory.adapters import AsymmetricAdapter, SymmetricAdapter
from lowrank_theory.losses import statistics, summed_excess_loss
from lowrank_theory.paper_protocol import paper_round, run_paper_protocol, step_scales


def test_convention_scales_and_validation():
    assert step_scales("sum", 4) == (1.0, 1.0)
    assert step_scales("paper", 4) == (0.5, 0.125)
    for bad in ("mean", None, 1):
        with pytest.raises(ValueError, match="convention must be one of"):
            step_scales(bad, 3)


def test_paper_convention_is_the_sum_convention_with_rescaled_steps():
    """Paper steps (lr_U, lr_A) = sum steps (lr_U / 2, lr_A / (2T)): the documented equations."""
    data = lt.TaskFamily.random(d=5, k=1, T=3, seed=0).sample(100, seed=1)
    paper = lt.fit_lora_ml(data, k=1, method="paper", seed=2, max_iter=50)
    rescaled = lt.fit_lora_ml(data, k=1, method="paper", seed=2, max_iter=50, convention="sum",
                              lr_U=0.003 / 2, lr_A=0.03 / 6)
    np.testing.assert_allclose(paper.A, rescaled.A, rtol=0, atol=1e-14)
    np.testing.assert_allclose(paper.U, rescaled.U, rtol=0, atol=1e-14)
    # Negative control: the unscaled sum convention is a different algorithm.
    plain = lt.fit_lora_ml(data, k=1, method="paper", seed=2, max_iter=50, convention="sum")
    assert np.abs(plain.A - paper.A).max() > 1e-3


@pytest.mark.parametrize("source", ["identity", "covariance", "sample"])
@pytest.mark.parametrize("k", [1, 2])
def test_fused_symmetric_rounds_equal_the_plain_rounds(source, k):
    """The fused step (3 products per step) reproduces paper_round, history included."""
    G = np.random.default_rng(0).standard_normal((6, 6))
    fam = lt.TaskFamily.random(d=6, k=k, T=3, seed=1,
                               Sigma=G @ G.T / 6 + np.eye(6) if source == "covariance" else None)
    stats = statistics(fam.sample(80, seed=2) if source == "sample" else fam)
    ad = SymmetricAdapter(k)
    f0 = ad.init_factors(3, 6, np.random.default_rng(3), 0.1)
    run = run_paper_protocol(stats, ad, np.zeros((6, 6)), f0, rounds=40)
    A, f = np.zeros((6, 6)), f0
    for r in range(40):
        A, f = paper_round(stats, ad, A, f, convention="paper")
        assert run.history[r + 1] == pytest.approx(float(summed_excess_loss(stats, A + ad.delta(f))),
                                                   rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(run.A, A, rtol=0, atol=1e-13)
    np.testing.assert_allclose(run.factors[0], f[0], rtol=0, atol=1e-13)
    np.testing.assert_array_equal(f0[0], ad.init_factors(3, 6, np.random.default_rng(3), 0.1)[0])


def test_batched_runs_equal_single_runs_for_both_adapters():
    datas = [lt.TaskFamily.random(d=5, k=1, T=3, seed=s).sample(60, seed=s) for s in range(3)]
    stats = [statistics(d) for d in datas]
    batch = lt.losses.Statistics(*(np.stack([getattr(s, n) for s in stats]) for n in ("Sxx", "Sxy", "syy")))
    for ad in (SymmetricAdapter(1), AsymmetricAdapter(1)):
        starts = [ad.init_factors(3, 5, np.random.default_rng(s), 0.1) for s in range(3)]
        stacked = tuple(np.stack(p) for p in zip(*starts))
        run = run_paper_protocol(batch, ad, np.zeros((3, 5, 5)), stacked, rounds=20)
        assert run.history.shape == (21, 3)
        for i in range(3):
            one = run_paper_protocol(stats[i], ad, np.zeros((5, 5)), starts[i], rounds=20)
            np.testing.assert_allclose(run.A[i], one.A, rtol=0, atol=1e-13)
            np.testing.assert_allclose(run.history[:, i], one.history, rtol=1e-12)


def test_divergence_stops_the_batch_and_the_plain_path():
    stats = statistics(lt.TaskFamily.random(d=5, k=1, T=3, seed=0).sample(60, seed=1))
    for ad in (SymmetricAdapter(1), AsymmetricAdapter(1)):
        f0 = ad.init_factors(3, 5, np.random.default_rng(0), 0.1)
        with np.errstate(over="raise", invalid="raise"):  # no overflow may escape
            run = run_paper_protocol(stats, ad, np.zeros((5, 5)), f0, rounds=500, lr_U=1.0, lr_A=1.0)
        assert run.diverged and run.rounds_done < 500
        assert run.history.shape == (run.rounds_done + 1,)
