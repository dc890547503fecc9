"""Tests of ``lowrank-theory describe`` and of the config fields it reads: every field of every
sweepable experiment says what it means and which values it takes, the constructor enforces
exactly the values described, and the generated docs are the current ones."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path

import pytest
from lowrank_theory.cli import main
from lowrank_theory.cli.describe import DOCS, generated_docs
from lowrank_theory.simulations.describe import sweepable
from lowrank_theory.simulations.fields import field_specs

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
CONFIG_TYPES = {name: entry["config"] for name, entry in sweepable().items()}


def test_describe_json_lists_every_field_with_type_default_range_and_meaning(capsys):
    """``describe vary --json``: one record per dataclass field of VaryConfig, in order, with
    the default of the class and a range and meaning for each."""
    from lowrank_theory.simulations.configs import VaryConfig

    assert main(["describe", "vary", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["config"] == "VaryConfig" and record["table"] == "vary"
    fields = {f.name: f for f in dataclasses.fields(VaryConfig)}
    assert [f["name"] for f in record["fields"]] == list(fields)
    for entry in record["fields"]:
        assert entry["default"] == fields[entry["name"]].default
        assert entry["type"] and entry["range"] and entry["help"]
    assert {"experiment", "seeds", "grid", "options"} <= set(record["sweep_file_keys"])


@pytest.mark.parametrize("name", list(CONFIG_TYPES))
def test_every_field_says_what_it_means(name):
    """No field of a sweepable config lacks its one-line meaning (a field added without
    ``param(...)`` fails here)."""
    undocumented = [s.name for s in field_specs(CONFIG_TYPES[name])
                    if s.help == "(no description)"]
    assert not undocumented


def _outside(config_type, field: dataclasses.Field) -> list:
    """Values the field's metadata excludes (an empty list when it excludes none)."""
    meta = field.metadata
    hint = typing.get_type_hints(config_type)[field.name]
    tuple_field = typing.get_origin(hint) is tuple
    leaf = hint
    while typing.get_origin(leaf) is tuple:
        leaf = typing.get_args(leaf)[0]
    bad = []
    if "minimum" in meta:
        low = meta["minimum"]
        bad.append(low if meta.get("exclusive") else low - 1 if leaf is int else low - 1e-9)
    if "choices" in meta:
        bad.append("no-such-choice")
    if leaf is float:
        bad.append(math.inf)
    if not tuple_field:
        return bad
    default = field.default
    values = [(v,) for v in bad]
    if typing.get_args(hint)[-1] is not Ellipsis:  # a fixed-length tuple: replace one item
        values = [(v, *default[1:]) for v in bad]
    elif isinstance(default[0], tuple):
        values = [((v, v),) for v in bad]
    if meta.get("increasing") and len(default) > 1:
        values.append(tuple(reversed(default)))
    if meta.get("distinct"):
        values.append((default[0], default[0]))
    return values


CASES = [(name, f.name) for name, t in CONFIG_TYPES.items() for f in dataclasses.fields(t)]


@pytest.mark.parametrize(("name", "field_name"), CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_described_range_is_the_enforced_one(name, field_name):
    """Each value the description excludes (below the minimum, not a choice, not finite,
    not increasing, repeated) is refused by the config's constructor with an error naming the
    field; the default is accepted (the control)."""
    config_type = CONFIG_TYPES[name]
    field = next(f for f in dataclasses.fields(config_type) if f.name == field_name)
    config_type()  # the defaults are valid
    for value in _outside(config_type, field):
        with pytest.raises((TypeError, ValueError), match=field_name):
            config_type(**{field_name: value})


def test_unknown_experiment_exits_2_listing_them(capsys):
    assert main(["describe", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: EXPERIMENT must be one of vary, phase") and "language" in err


@pytest.mark.parametrize("name", DOCS)
def test_generated_docs_are_current(name):
    """docs/sweeps.md and docs/figures.md are what ``make docs`` writes from the config
    classes and the figure registry; edit those and run ``make docs``."""
    text = (DOCS_DIR / name).read_text("utf-8")
    assert text == generated_docs()[name], f"docs/{name} is out of date: run `make docs`"


def test_neural_options_described_are_the_run_functions():
    """The options a neural sweep file's [options] may hold, as describe states them, are
    those the neural run functions accept (device is a top-level key, progress is the
    command line's)."""
    pytest.importorskip("torch")
    from lowrank_theory.simulations.describe import NEURAL_OPTIONS
    from lowrank_theory.simulations.neural.experiments import EXPERIMENTS

    accepted = {o for e in EXPERIMENTS.values() for o in e.options} - {"device", "progress"}
    described = {part.split(" (")[0].strip() for part in NEURAL_OPTIONS.split("), ")}
    assert described == accepted
