"""Shared test configuration: hypothesis profiles, the seed fixture and a headless backend."""

import os

import matplotlib
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

matplotlib.use("Agg")

# The tests' matrices are tiny and pytest-xdist already fills both cores: multi-threaded BLAS
# would only oversubscribe them (and make timings and round-off depend on the thread count).
threadpool_limits(1)

# CI is derandomised and keeps no example database, so a run is reproducible;
# `--hypothesis-profile=thorough` explores far more instances.
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

#: Seeds every seeded claim is tested on (scikit-learn's ``global_random_seed`` idea):
#: a claim must hold for each of them, not for one lucky seed.
SEEDS = [int(s) for s in os.environ.get("LOWRANK_TEST_SEEDS", "0 1 2").split()]


@pytest.fixture(params=SEEDS)
def global_random_seed(request):
    """An integer seed; tests using it run once per seed in ``SEEDS``."""
    return request.param


@pytest.fixture
def rng(global_random_seed):
    """A ``numpy.random.Generator`` seeded by ``global_random_seed``."""
    return np.random.default_rng(global_random_seed)
