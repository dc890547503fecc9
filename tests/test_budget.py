"""Tests of simulations/budget.py: a sweep's runs are counted without building it, and the
memory of a unit estimated from its fields is checked against what a run really allocates."""

import time
import tracemalloc

import pytest
from lowrank_theory.simulations.budget import (
    HARD_MAX_RUNS,
    MAX_RUNS,
    SweepTooLarge,
    check_memory,
    check_run_count,
    format_bytes,
    unit_bytes,
)
from lowrank_theory.simulations.configs import (
    LandscapeConfig,
    PhaseConfig,
    RateConfig,
    VaryConfig,
)
from lowrank_theory.simulations.experiments import EXPERIMENTS
from lowrank_theory.simulations.schemes import SchemesConfig


def test_run_count_is_a_product_checked_against_both_limits():
    assert check_run_count(MAX_RUNS, 1) == MAX_RUNS
    with pytest.raises(SweepTooLarge, match=f"{MAX_RUNS + 1:,} runs.*--force"):
        check_run_count(MAX_RUNS + 1, 1)
    assert check_run_count(MAX_RUNS + 1, 1, force=True) == MAX_RUNS + 1
    with pytest.raises(SweepTooLarge, match="allowed at all"):
        check_run_count(HARD_MAX_RUNS, 2, force=True)
    start = time.perf_counter()
    with pytest.raises(SweepTooLarge, match="1,000,000,000,000,000,000 configs"):
        check_run_count(10**18, 10**9, force=True)  # counted, never listed
    assert time.perf_counter() - start < 0.1


#: Configs whose dominant arrays outweigh the interpreter's fixed allocations, each run in
#: well under a second: the estimate must bound the measured peak, and not by an absurd factor.
MEASURED = [
    ("phase", PhaseConfig(d=320, T=3, k=1, restarts=1), (0,)),
    ("landscape", LandscapeConfig(d=60, T=3, k=1, starts=1), (0,)),
    ("rate", RateConfig(d=30, N=2000, n_grid=(50, 400)), (0,)),
    ("vary", VaryConfig(d=10, N=4000, n=100, rounds=5, ft_steps=10), (0, 1, 2)),
]


@pytest.mark.parametrize(("name", "config", "seeds"), MEASURED,
                         ids=[m[0] for m in MEASURED])
def test_memory_estimate_bounds_the_measured_peak(name, config, seeds):
    """``unit_bytes`` against ``tracemalloc``'s peak of the real run function (numpy reports
    its allocations to it): an upper bound within a factor of 8."""
    experiment = EXPERIMENTS[name]
    n_seeds = len(seeds) if experiment.seeds_per_unit is None else 1
    tracemalloc.start()
    try:
        experiment.run(config, seeds[:n_seeds])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = unit_bytes(config, n_seeds)
    assert peak <= estimate <= 8 * peak, (format_bytes(peak), format_bytes(estimate))


def test_the_reported_huge_grid_point_is_refused_with_its_numbers():
    """``[grid] d = 100000`` for the phase experiment allocated 224 GiB before it failed."""
    estimate = unit_bytes(PhaseConfig(d=100_000))
    assert estimate > 224 * 2**30
    with pytest.raises(SweepTooLarge, match=r"PhaseConfig\(d=100000.*373 GiB.*16.0 GiB"):
        check_memory([PhaseConfig(d=10), PhaseConfig(d=100_000)], 1, limit=16 * 2**30)
    assert check_memory([PhaseConfig(d=100_000)], 1, limit=16 * 2**30, force=True) == estimate


def test_concurrent_units_add_up():
    """With --jobs 4 the four largest units run at once: the check adds them."""
    configs = [RateConfig(d=100, N=100_000), RateConfig(d=10)]
    one = unit_bytes(configs[0])
    limit = int(1.5 * one)
    assert check_memory(configs, 1, jobs=1, limit=limit) == one
    with pytest.raises(SweepTooLarge, match="2 units at once .--jobs 4.*fewer --jobs"):
        check_memory([configs[0]] * 2, 1, jobs=4, limit=limit)


def test_configs_without_an_estimate_are_not_checked():
    class Other(PhaseConfig):
        pass

    assert unit_bytes(Other()) is None
    assert check_memory([Other(d=10**6)], 1, limit=1) is None
    assert unit_bytes(SchemesConfig()) > 0
