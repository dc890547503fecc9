"""Tests of simulations/configs.py: validation, hashing, and the quick / full sweeps."""

import dataclasses
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulations.configs import (
    VARY_DEFAULTS,
    VARY_VALUES,
    LandscapeConfig,
    PhaseConfig,
    RateConfig,
    Sweep,
    VaryConfig,
    vary_configs,
)


@pytest.mark.parametrize(
    ("cls", "kwargs", "error", "name"),
    [
        (VaryConfig, {"d": 0}, ValueError, "d"),
        (VaryConfig, {"d": 2.5}, TypeError, "d"),
        (VaryConfig, {"T": True}, TypeError, "T"),
        (VaryConfig, {"k": 11}, ValueError, "k"),
        (VaryConfig, {"sigma": -0.1}, ValueError, "sigma"),
        (VaryConfig, {"sigma": float("nan")}, ValueError, "sigma"),
        (VaryConfig, {"ft_lr": 0.0}, ValueError, "ft_lr"),
        (VaryConfig, {"rounds": "3000"}, TypeError, "rounds"),
        (PhaseConfig, {"solver": "newton"}, ValueError, "solver"),
        (PhaseConfig, {"restarts": 0}, ValueError, "restarts"),
        (RateConfig, {"n_grid": (100, 10)}, ValueError, "n_grid"),
        (RateConfig, {"n_grid": [10, 100]}, TypeError, "n_grid"),
        (RateConfig, {"n_grid": (10, 0)}, ValueError, "n_grid"),
        (LandscapeConfig, {"starts": 0}, ValueError, "starts"),
        (LandscapeConfig, {"k": 7}, ValueError, "k"),
    ],
)
def test_invalid_configs_raise_naming_the_argument(cls, kwargs, error, name):
    """A bad field raises TypeError/ValueError whose message names the field."""
    with pytest.raises(error, match=name):
        cls(**kwargs)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        VaryConfig().d = 3


def test_hash_depends_on_every_field_and_type():
    base = VaryConfig()
    assert len(base.config_hash()) == 12
    assert base.config_hash() == VaryConfig().config_hash()
    for field in dataclasses.fields(VaryConfig):
        value = getattr(base, field.name)
        changed = dataclasses.replace(base, **{field.name: value * 2})
        assert changed.config_hash() != base.config_hash(), field.name
    # The type is part of the hash, so two experiments never share result files.
    assert PhaseConfig(d=6, T=2, k=1).config_hash() != LandscapeConfig(d=6, T=2, k=1, starts=3,
                                                                        solver="exact").config_hash()


def test_hash_is_stable_across_processes():
    """The hash names files on disk, so it must not depend on the interpreter's hash seed."""
    code = "from simulations.configs import VaryConfig; print(VaryConfig(d=7).config_hash())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == VaryConfig(d=7).config_hash()


@given(d=st.integers(1, 30), T=st.integers(1, 8), k=st.integers(1, 30), restarts=st.integers(1, 4))
def test_hash_equal_iff_configs_equal(d, T, k, restarts):
    """Two valid configs have the same hash exactly when they are equal."""
    k = min(k, d)
    a = PhaseConfig(d=d, T=T, k=k, restarts=restarts)
    b = PhaseConfig(d=d, T=T + 1, k=k, restarts=restarts)
    assert a.config_hash() == PhaseConfig(d=d, T=T, k=k, restarts=restarts).config_hash()
    assert a.config_hash() != b.config_hash()


def test_ft_rank_is_paper_protocol():
    """Fine-tuning rank k, or 3k when T = 2 (capped at d)."""
    assert VaryConfig(T=3, k=2).ft_rank == 2
    assert VaryConfig(T=2, k=2).ft_rank == 6
    assert VaryConfig(T=2, k=3, d=5).ft_rank == 5
    assert VaryConfig(T=2).columns()["ft_rank"] == 3


def test_vary_set_covers_every_panel_once():
    configs = vary_configs()
    assert len({c.config_hash() for c in configs}) == len(configs) == 12
    for name, values in VARY_VALUES.items():
        for value in values:
            want = {**VARY_DEFAULTS, name: value}
            assert sum(all(getattr(c, p) == v for p, v in want.items()) for c in configs) == 1


def test_full_sizes_are_the_paper_settings():
    from simulations.experiments import EXPERIMENTS

    full = EXPERIMENTS["vary"].full
    assert full.seeds == (0, 1, 2, 3, 4)
    for config in full.configs:
        assert (config.sigma, config.rounds, config.ft_lr) == (0.1, 3000, 0.005)
    assert {c.N for c in full.configs} == {100, 1000, 5000, 10000}
    phase = EXPERIMENTS["phase"].full
    assert sorted({c.T for c in phase.configs}) == list(range(1, 9))
    assert {c.T for c in EXPERIMENTS["landscape"].full.configs} == {2, 3}


def test_registry_matches_cli_names():
    from simulations.cli import EXPERIMENT_NAMES
    from simulations.experiments import EXPERIMENTS

    assert tuple(EXPERIMENTS) == EXPERIMENT_NAMES
    for experiment in EXPERIMENTS.values():
        for size in ("quick", "full"):
            assert isinstance(experiment.sweep(size), Sweep)
        with pytest.raises(ValueError, match="quick"):
            experiment.sweep("medium")


def test_sweep_validation():
    with pytest.raises(ValueError, match="distinct"):
        Sweep((VaryConfig(), VaryConfig()), seeds=(0,))
    with pytest.raises(ValueError, match="seeds"):
        Sweep((VaryConfig(),), seeds=())
    with pytest.raises(ValueError, match="seeds"):
        Sweep((VaryConfig(),), seeds=(1, 1))
    with pytest.raises(TypeError, match="configs"):
        Sweep(({"d": 3},), seeds=(0,))
