"""Tests of lowrank_theory/_validation.py, the one module of validators.

Each validator is compared with the rule it states, on values that pass and on near misses that
must fail (the negative controls), and the experiment configs are shown to raise the very
messages of these validators.
"""

import numpy as np
import pytest
from lowrank_theory.simulations.configs import PhaseConfig, RateConfig, VaryConfig

from lowrank_theory._validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_int_tuple,
)


@pytest.mark.parametrize("value", [(1,), (1, 2, 5), (np.int64(3), 4)])
def test_int_tuple_accepts_increasing_tuples_of_ints(value):
    """A non-empty, strictly increasing tuple of ints comes back as Python ints, unchanged."""
    out = check_int_tuple(value, "grid")
    assert out == tuple(int(v) for v in value)
    assert all(type(v) is int for v in out)


@pytest.mark.parametrize(("value", "error", "match"), [
    ((), TypeError, "grid must be a non-empty tuple"),
    ([1, 2], TypeError, "grid must be a non-empty tuple"),
    ((1, 1), ValueError, "grid must be strictly increasing"),
    ((2, 1), ValueError, "grid must be strictly increasing"),
    ((1, 2.5), TypeError, r"grid\[1\] must be an integer"),
    ((0, 1), ValueError, r"grid\[0\] must be >= 1"),
])
def test_int_tuple_refuses_near_misses(value, error, match):
    """Empty, unsorted, repeated, non-integer or too-small items are refused by name."""
    with pytest.raises(error, match=match):
        check_int_tuple(value, "grid")


def test_bool_accepts_only_booleans():
    """True/False (and numpy's) pass as bool; 0, 1 and "yes" are refused, naming the argument."""
    assert check_bool(True, "flag") is True and check_bool(np.bool_(False), "flag") is False
    for bad in (0, 1, "yes", None):
        with pytest.raises(TypeError, match="flag must be True or False"):
            check_bool(bad, "flag")


@pytest.mark.parametrize(("make", "check"), [
    (lambda: VaryConfig(d=0), lambda: check_int(0, "d")),
    (lambda: VaryConfig(T=2.5), lambda: check_int(2.5, "T")),
    (lambda: VaryConfig(sigma=-1.0), lambda: check_float(-1.0, "sigma")),
    (lambda: VaryConfig(ft_lr=0.0), lambda: check_float(0.0, "ft_lr", strict=True)),
    (lambda: VaryConfig(family="x"), lambda: check_choice("x", "family", ("per-run", "per-seed"))),
    (lambda: VaryConfig(authors_quirks=1), lambda: check_bool(1, "authors_quirks")),
    (lambda: PhaseConfig(solver="newton"),
     lambda: check_choice("newton", "solver", ("exact", "lbfgs", "paper"))),
    (lambda: RateConfig(n_grid=(5, 2)), lambda: check_int_tuple((5, 2), "n_grid")),
])
def test_configs_raise_the_core_validators_messages(make, check):
    """A bad config field raises exactly what the core validator raises for that value."""
    with pytest.raises((TypeError, ValueError)) as expected:
        check()
    with pytest.raises(type(expected.value)) as got:
        make()
    assert str(got.value) == str(expected.value)


def test_configs_hold_python_scalars_whatever_they_were_given():
    """numpy scalars are accepted and stored as Python ones: the hash is that of the ints."""
    given = VaryConfig(d=np.int64(5), T=np.int32(3), sigma=np.float32(0.5))
    assert given.config_hash() == VaryConfig(d=5, T=3, sigma=0.5).config_hash()
    assert type(given.d) is int and type(given.sigma) is float
