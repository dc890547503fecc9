"""Tests of simulations/configs.py: validation, hashing, and the quick / full sweeps."""

import dataclasses
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lowrank_theory.simulations.configs import (
    VARY_DEFAULTS,
    VARY_FT_STEPS,
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
        (VaryConfig, {"family": "per-task"}, ValueError, "family"),
        (VaryConfig, {"family_seed": -1}, ValueError, "family_seed"),
        (VaryConfig, {"authors_quirks": 1}, TypeError, "authors_quirks"),
        (VaryConfig, {"authors_quirks": "yes"}, TypeError, "authors_quirks"),
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
    other = {"family": "per-seed", "family_seed": 1, "authors_quirks": True}
    for field in dataclasses.fields(VaryConfig):
        value = getattr(base, field.name)
        changed = dataclasses.replace(base, **{field.name: other.get(field.name, value * 2)})
        assert changed.config_hash() != base.config_hash(), field.name
    # The type is part of the hash, so two experiments never share result files.
    assert PhaseConfig(d=6, T=2, k=1).config_hash() != LandscapeConfig(d=6, T=2, k=1, starts=3,
                                                                        solver="exact").config_hash()


def test_hash_is_stable_across_processes():
    """The hash names files on disk, so it must not depend on the interpreter's hash seed."""
    code = "from lowrank_theory.simulations.configs import VaryConfig; print(VaryConfig(d=7).config_hash())"
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


def test_noise_std_is_sigma_or_its_square_with_the_quirks():
    assert VaryConfig(sigma=0.1).noise_std == 0.1
    assert VaryConfig(sigma=0.1, authors_quirks=True).noise_std == pytest.approx(0.01)
    assert VaryConfig(authors_quirks=True).columns()["noise_std"] == pytest.approx(0.01)


def test_vary_set_covers_every_panel_once_with_its_sweeps_steps():
    """One config per panel point; a point's fine-tuning steps are the most of its sweeps
    (the default point belongs to the d, T, n and k sweeps, not to N's)."""
    configs = vary_configs()
    assert len({c.config_hash() for c in configs}) == len(configs) == 12
    for name, values in VARY_VALUES.items():
        for value in values:
            want = {**VARY_DEFAULTS, name: value}
            (config,) = [c for c in configs if all(getattr(c, p) == v for p, v in want.items())]
            sweeps = [p for p, vs in VARY_VALUES.items()
                      if all(want[q] == VARY_DEFAULTS[q] for q in VARY_DEFAULTS if q != p)
                      and want[p] in vs]
            assert config.ft_steps == max(VARY_FT_STEPS[p] for p in sweeps)
    default = next(c for c in configs if all(getattr(c, p) == v for p, v in VARY_DEFAULTS.items()))
    assert default.ft_steps == 10000
    assert {c.ft_steps for c in configs if c.d != 10} == {1400}
    assert {c.ft_steps for c in configs if c.N != 5000 or c.n != 100} == {1000}
    with pytest.raises(ValueError, match="params"):
        vary_configs(params=("sigma",))


def test_full_sizes_are_the_paper_settings():
    """The authors' schedule, step counts, sweeps and ground-truth scheme; the T and d sweeps
    again with their quirks; quick differs only in the seeds."""
    from lowrank_theory.simulations.experiments import EXPERIMENTS

    vary = EXPERIMENTS["vary"]
    full = vary.full
    assert full.seeds == (0, 1, 2, 3, 4)
    assert vary.quick.configs == full.configs and len(vary.quick.seeds) == 3
    assert VARY_FT_STEPS == {"d": 1400, "T": 10000, "N": 1000, "n": 1000, "k": 10000}
    for config in full.configs:
        assert (config.sigma, config.rounds, config.ft_lr) == (0.1, 3000, 0.005)
        assert config.family == "per-run"
    plain = [c for c in full.configs if not c.authors_quirks]
    quirky = [c for c in full.configs if c.authors_quirks]
    assert plain == list(vary_configs())
    assert {(c.d, c.T) for c in quirky} == {(5, 3), (10, 3), (20, 3), (10, 2), (10, 5)}
    assert {c.N for c in full.configs} == {100, 1000, 5000, 10000}
    phase = EXPERIMENTS["phase"].full
    assert sorted({c.T for c in phase.configs}) == list(range(1, 9))
    assert {c.T for c in EXPERIMENTS["landscape"].full.configs} == {2, 3}


def test_registry_sweeps():
    from lowrank_theory.simulations.experiments import EXPERIMENTS

    assert tuple(EXPERIMENTS) == ("vary", "phase", "rate", "landscape", "schemes", "atlas")
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


def test_vary_defaults_are_the_papers_constants_from_the_core():
    """VaryConfig's defaults are the core's paper constants (rounds, fine-tuning step, noise)
    and the vary set's default point, so the two cannot drift apart."""
    from lowrank_theory.adaptation import PAPER_FT_LR
    from lowrank_theory.paper_protocol import PAPER_ROUNDS
    from lowrank_theory.tasks import PAPER_SIGMA

    config = VaryConfig()
    assert (config.rounds, config.ft_lr, config.sigma) == (PAPER_ROUNDS, PAPER_FT_LR, PAPER_SIGMA)
    assert {name: getattr(config, name) for name in VARY_DEFAULTS} == VARY_DEFAULTS
    assert config.ft_steps == max(VARY_FT_STEPS.values())
    # The paper's values, as its text states them.
    assert (PAPER_ROUNDS, PAPER_FT_LR, PAPER_SIGMA) == (3000, 0.005, 0.1)
