"""Tests of simulations/schemes.py: the ``schemes`` experiment's table and the claims it shows."""

import math

import numpy as np
import pandas as pd
import pytest
from lowrank_theory.figures.io import read_table
from lowrank_theory.simulations.configs import Sweep
from lowrank_theory.simulations.experiments import EXPERIMENTS, stream_seeds
from lowrank_theory.simulations.runner import run_experiment
from lowrank_theory.simulations.schemes import COLUMNS, EXPERIMENT, SchemesConfig, run_schemes

import lowrank_theory as lt
from lowrank_theory.schemes import rank_floor

SMALL = SchemesConfig(d=6, T=3, k=1, N=300, n_grid=(10,), max_rank=5, ft_steps=30,
                      subspace_steps=(0, 20))


@pytest.fixture(scope="module")
def table():
    return run_schemes(SMALL, (0, 1))


def test_config_is_validated():
    with pytest.raises(ValueError, match="n_grid"):
        SchemesConfig(d=10, n_grid=(10, 50))  # the noise estimate needs n > d
    with pytest.raises(TypeError, match="population must be True or False"):
        SchemesConfig(population=1)
    with pytest.raises(ValueError, match="max_rank must be <= d"):
        SchemesConfig(d=4, max_rank=5, n_grid=(10,))
    assert SchemesConfig().columns()["kT1"] == 4


def test_table_is_tidy_and_covers_every_scheme_base_and_n(table):
    assert list(table.columns) == list(COLUMNS)
    assert set(table["base"]) == {"SR", "LoRA-ML"}
    assert set(table["n"]) == {10.0, math.inf}
    per_base = table.groupby("base")["scheme"].apply(set)
    assert per_base["SR"] == per_base["LoRA-ML"]
    families = {s.split(" (")[0] for s in per_base["SR"]}
    assert families == {"lora-exact", "lora-gd", "adaptive-rank", "mixture", "subspace-init",
                        "full", "interpolation", "perturbation"}
    assert (table["params"] <= table["budget"]).all()
    lora = table[table["scheme"] == "lora-exact"]
    np.testing.assert_array_equal(lora["params"], lora["budget"])
    # The mixture pays one weight per LoRA-ML adapter; SR has none to mix.
    mix = table[table["scheme"] == "mixture"].groupby("base")["budget"].min()
    assert mix["LoRA-ML"] == SMALL.T + 2 * SMALL.d and mix["SR"] == 2 * SMALL.d


def instance(seed):
    """The family, new task and SR base run_schemes draws for ``seed`` (same streams)."""
    st = stream_seeds(seed, ("family", "sample", "new_task", "harmful", "init", "fine_tune"))
    fam = lt.TaskFamily.random(SMALL.d, SMALL.k, SMALL.T, SMALL.sigma, seed=st["family"])
    data = fam.sample(SMALL.N, seed=st["sample"])
    return fam.new_task(seed=st["new_task"]), lt.standard_retraining(data)


def test_sr_floor_holds_on_every_population_row(table):
    """Theorem 1 across schemes, on the table: from SR, every factorised scheme below
    2dk(T+1) parameters has an update of rank < k(T+1) and a loss at or above the
    Eckart-Young floor of that rank. The dense update (d^2 = 36 < 48 parameters here) is the
    exception the floor does not bind: it crosses at d^2."""
    threshold = 2 * SMALL.d * SMALL.k * (SMALL.T + 1)
    pop = table[np.isinf(table["n"]) & (table["base"] == "SR")]
    # The dense updates: full fine-tuning, its interpolation, and the post-hoc perturbations.
    factorised = pop[~pop["scheme"].isin(["full", "interpolation (full)"])
                     & ~pop["scheme"].str.startswith("perturbation")]
    below = factorised[factorised["budget"] < threshold]
    assert len(below) > 20
    for seed, rows in below.groupby("seed"):
        new, A_sr = instance(seed)
        floors = np.array([rank_floor(A_sr, new, int(r)) for r in rows["update_rank"]])
        assert (rows["update_rank"] < SMALL.k * (SMALL.T + 1)).all()
        assert (floors > 0).all() and (rows["excess_loss"] >= floors * (1 - 1e-9)).all()
        # Negative control: the floor of one rank more is not a lower bound.
        higher = np.array([rank_floor(A_sr, new, int(r) + 1) for r in rows["update_rank"]])
        assert (rows["excess_loss"] > higher * 1.01).any()
    dense = pop[pop["scheme"] == "full"].groupby("seed")["crossing_budget"].first()
    assert (dense == SMALL.d**2).all()
    exact = factorised[factorised["scheme"] == "lora-exact"]
    assert (exact.groupby("seed")["crossing_budget"].first() <= threshold).all()
    assert table[table["base"] == "LoRA-ML"]["crossing_budget"].isna().all()


def test_lora_ml_rank_k_is_at_the_target(table):
    """From LoRA-ML, exact rank-k LoRA is the target itself, far below SR's rank-k loss."""
    pop = table[np.isinf(table["n"]) & (table["budget"] == 2 * SMALL.d * SMALL.k)]
    ml = pop[(pop["base"] == "LoRA-ML") & (pop["scheme"] == "lora-exact")]
    np.testing.assert_array_equal(ml["excess_loss"], ml["target_loss"])
    sr = pop[(pop["base"] == "SR") & (pop["scheme"] == "lora-exact")]
    assert (ml["excess_loss"].to_numpy() < 1e-2 * sr["excess_loss"].to_numpy()).all()


def test_perturbation_rows_compare_optimised_and_random(table):
    pert = table[table["scheme"].str.startswith("perturbation")]
    assert set(pert["budget"] // (2 * SMALL.d)) == {SMALL.k, SMALL.k * (SMALL.T + 1)}
    gain = pert.groupby(pert["scheme"].str.contains("optimised"))["harmful_gain"].median()
    assert gain[True] > 3 * gain[False]


def test_run_is_deterministic_and_seeds_do_not_interact(table):
    alone = run_schemes(SMALL, (1,))
    pd.testing.assert_frame_equal(table[table["seed"] == 1].reset_index(drop=True), alone)


def test_registered_and_runs_through_the_runner(tmp_path):
    assert EXPERIMENTS["schemes"] is EXPERIMENT
    assert all(isinstance(c, SchemesConfig) for c in EXPERIMENT.quick.configs)
    config = SchemesConfig(d=4, T=2, N=100, n_grid=(8,), max_rank=3, ft_steps=5,
                           subspace_steps=(0,), population=False)
    result = run_experiment(EXPERIMENT, tmp_path, sweep=Sweep((config,), seeds=(0,)))
    assert result.n_computed == 1
    back = read_table(tmp_path, "schemes")
    assert {"d", "T", "k", "sigma", "kT1", "excess_loss", "crossing_budget"} <= set(back.columns)
