"""Tests of simulations/sweepfile.py: a TOML sweep becomes the Cartesian product of its grid, and
every mistake is refused with a message that names the key, before anything is run."""

import dataclasses
import itertools
import math
import re
import time
import tomllib
from pathlib import Path

import pytest
from lowrank_theory.simulations.configs import PhaseConfig, RateConfig, VaryConfig
from lowrank_theory.simulations.experiments import EXPERIMENTS
from lowrank_theory.simulations.sweepfile import (
    SweepFileError,
    field_types,
    load_sweep_file,
    parse_sweep,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_grid_is_the_cartesian_product_with_defaults_elsewhere():
    """Fields in the grid take each listed value, the last one fastest; a scalar is one value;
    every other field keeps the config's default; ``seeds = 3`` means seeds 0, 1, 2."""
    spec = parse_sweep({"experiment": "phase", "seeds": 3,
                        "grid": {"d": 6, "T": [2, 3, 4], "k": [1, 2]}})
    expected = tuple(PhaseConfig(d=6, T=T, k=k) for T, k in itertools.product((2, 3, 4), (1, 2)))
    assert spec.sweep.configs == expected
    assert spec.sweep.seeds == (0, 1, 2)
    assert spec.experiment is EXPERIMENTS["phase"] and spec.options == {}
    assert all(c.restarts == PhaseConfig().restarts for c in spec.sweep.configs)


def test_explicit_seeds_and_tuple_fields():
    """A list of seeds is kept as given; a tuple field takes a flat list as one value and a
    list of lists as several."""
    one = parse_sweep({"experiment": "rate", "seeds": [4, 0], "grid": {"n_grid": [20, 50]}})
    assert one.sweep.seeds == (4, 0)
    assert [c.n_grid for c in one.sweep.configs] == [(20, 50)]
    two = parse_sweep({"experiment": "rate", "seeds": 1,
                       "grid": {"n_grid": [[20, 50], [100, 200, 400]]}})
    assert [c.n_grid for c in two.sweep.configs] == [(20, 50), (100, 200, 400)]


def test_an_int_for_a_float_field_is_the_float():
    """``sigma = 1`` builds the config ``sigma=1.0``, with the same hash (and result files)."""
    spec = parse_sweep({"experiment": "vary", "seeds": 1, "grid": {"sigma": [1, 0.5]}})
    assert [c.config_hash() for c in spec.sweep.configs] == [
        VaryConfig(sigma=1.0).config_hash(), VaryConfig(sigma=0.5).config_hash()]
    assert isinstance(spec.sweep.configs[0].sigma, float)


def test_field_types_read_the_config_annotations():
    types = field_types(RateConfig)
    assert types["d"] is int and types["sigma"] is float and types["n_grid"] == tuple[int, ...]
    assert list(types) == [f.name for f in dataclasses.fields(RateConfig)]


@pytest.mark.parametrize(("data", "names"), [
    ({"experiment": "vary", "seeds": 1, "grid": {"solver": "exact"}},
     ["grid.solver", "VaryConfig", "phase", "landscape"]),          # a field of another experiment
    ({"experiment": "vary", "seeds": 1, "grid": {"dim": 5}}, ["grid.dim", "d, T, N, n, k"]),
    ({"experiment": "vary", "seeds": 1, "grid": {"d": 50.0}}, ["grid.d", "integer", "50.0"]),
    ({"experiment": "vary", "seeds": 1, "grid": {"d": [5, 10.5]}}, ["grid.d[1]", "integer"]),
    ({"experiment": "vary", "seeds": 1, "grid": {"d": [[5, 10]]}}, ["grid.d", "one int"]),
    ({"experiment": "vary", "seeds": 1, "grid": {"d": True}}, ["grid.d", "integer"]),
    ({"experiment": "vary", "seeds": 1, "grid": {"d": []}}, ["grid.d", "no values"]),
    ({"experiment": "vary", "seeds": 1, "grid": {"d": [5, 5]}}, ["grid.d", "twice"]),
    ({"experiment": "vary", "seeds": 1, "grid": {"sigma": "0.1"}}, ["grid.sigma", "number"]),
    ({"experiment": "rate", "seeds": 1, "grid": {"n_grid": 100}}, ["grid.n_grid", "tuple field"]),
    ({"experiment": "rate", "seeds": 1, "grid": {"n_grid": [[20, 50.5]]}},
     ["grid.n_grid[0][1]", "integer"]),
    ({"experiment": "schemes", "seeds": 1, "grid": {"population": 1}},
     ["grid.population", "true or false"]),
    ({"experiment": "phase", "seeds": 1, "grid": {"d": 3, "k": [1, 5]}},
     ["grid point d=3, k=5", "k must be <= d"]),
    ({"experiment": "phase", "seeds": 1, "grid": {"solver": "newton"}}, ["solver", "exact"]),
    ({"experiment": "phase", "seeds": 1, "grid": [1]}, ["grid must be a table"]),
    ({"experiment": "nope", "seeds": 1}, ["experiment", "vary, phase, rate, landscape"]),
    ({"seeds": 1}, ["missing 'experiment'"]),
    ({"experiment": "phase"}, ["missing 'seeds'"]),
    ({"experiment": "phase", "seeds": 0}, ["seeds", ">= 1"]),
    ({"experiment": "phase", "seeds": [1, 1]}, ["seeds", "distinct"]),
    ({"experiment": "phase", "seeds": [0.5]}, ["seeds[0]", "integer"]),
    ({"experiment": "phase", "seeds": "all"}, ["seeds", "number of seeds"]),
    ({"experiment": "phase", "seeds": 1, "grids": {}}, ["unknown key", "grids", "grid"]),
    ({"experiment": "phase", "seeds": 1, "options": {"device": "cuda"}},
     ["options.device", "no options"]),
    ({"experiment": ["phase"], "seeds": 1}, ["experiment", "a string", "list ['phase']"]),
    ({"experiment": {"name": "phase"}, "seeds": 1}, ["experiment", "a string", "dict"]),
    ({"experiment": "phase", "seeds": [2**64]}, ["seeds[0]", "0..2**63-1", str(2**64)]),
    ({"experiment": "phase", "seeds": [2**63]}, ["seeds[0]", "0..2**63-1"]),
    ({"experiment": "phase", "seeds": [-1]}, ["seeds[0]", "0..2**63-1"]),
    ({"experiment": "phase", "seeds": 1_000_000_000}, ["1,000,000,000 seeds", "allowed at all"]),
    ({"experiment": "phase", "seeds": 200_000}, ["200,000 runs", "--force"]),
])
def test_mistakes_are_refused_naming_the_key(data, names):
    with pytest.raises(SweepFileError) as exc:
        parse_sweep(data, source="my.toml")
    message = str(exc.value)
    assert message.startswith("my.toml: ")
    for name in names:
        assert name in message, (name, message)


def test_load_refuses_a_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(SweepFileError, match="cannot read"):
        load_sweep_file(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('experiment = "phase"\nseeds = [0, 1\n')
    with pytest.raises(SweepFileError, match="not valid TOML"):
        load_sweep_file(bad)
    bad.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(SweepFileError, match="not valid TOML"):
        load_sweep_file(bad)
    with pytest.raises(SweepFileError, match="cannot read it"):
        load_sweep_file(tmp_path)  # a folder


def test_load_reads_a_bounded_number_of_bytes(tmp_path, monkeypatch):
    """An endless file (/dev/zero) or a huge one is refused, not read into memory."""
    import lowrank_theory.simulations.sweepfile as sweepfile

    if Path("/dev/zero").exists():
        with pytest.raises(SweepFileError, match="more than 16,777,216 bytes"):
            load_sweep_file("/dev/zero")
    path = tmp_path / "s.toml"
    path.write_text('experiment = "phase"\nseeds = 1\n')
    monkeypatch.setattr(sweepfile, "MAX_FILE_BYTES", path.stat().st_size - 1)
    with pytest.raises(SweepFileError, match="bytes; a sweep file lists values"):
        load_sweep_file(path)


NEURAL = ("shallow", "vision", "language")


def _load(path):
    if tomllib.loads(path.read_text())["experiment"] in NEURAL:
        pytest.importorskip("torch")
    return load_sweep_file(path)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_examples_validate(path):
    """Each example file is a valid sweep whose configs are the product of its grid."""
    spec = _load(path)
    data = tomllib.loads(path.read_text())
    sizes = [len(v) if isinstance(v, list) else 1 for v in data["grid"].values()]
    assert len(spec.sweep.configs) == math.prod(sizes) > 1
    assert isinstance(spec.sweep.configs[0], spec.experiment.config_type)


def test_examples_are_the_ones_the_guide_names():
    names = {p.name for p in EXAMPLES.glob("*.toml")}
    assert names == {"recovery_d50.toml", "vary_small.toml", "shallow_d.toml"}
    guide = (EXAMPLES.parent / "docs" / "guide.md").read_text()
    assert all(f"`{name}`" in guide for name in names)


#: Claims an example's comment makes, as (pattern, what the sweep must have): a count of
#: rounds, of steps, of seeds, or a field's value ("d = 50").
CLAIMS = (
    (r"([\d,]+) rounds", lambda spec: {c.rounds for c in spec.sweep.configs}),
    (r"([\d,]+) (?:gradient steps of fine-tuning|fine-tuning steps)",
     lambda spec: {getattr(c, "ft_steps", getattr(c, "finetune_steps", None))
                   for c in spec.sweep.configs}),
    (r"([\d,]+) retraining (?:and|steps)",
     lambda spec: {getattr(c, "retrain_steps", None) for c in spec.sweep.configs}),
    (r"(\d+) seeds", lambda spec: {len(spec.sweep.seeds)}),
)


def comment_claims(text: str) -> list[tuple[str, str]]:
    """(claim, number) pairs of the comment lines of an example (numbers without commas)."""
    comment = "\n".join(line[1:] for line in text.splitlines() if line.startswith("#"))
    comment = " ".join(comment.split())
    return [(pattern, match.replace(",", "")) for pattern, _ in CLAIMS
            for match in re.findall(pattern, comment)]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_each_examples_comment_matches_what_it_runs(path):
    """Every count the comment states (rounds, fine-tuning and retraining steps, seeds) is the
    sweep's, and every ``FIELD = VALUE`` it names is a value the sweep's configs take. (The
    vary example's comment once said 1,000 fine-tuning steps where it ran 10,000.)"""
    spec = _load(path)
    text = path.read_text()
    checks = dict(CLAIMS)
    claims = comment_claims(text)
    for pattern, number in claims:
        assert int(number) in checks[pattern](spec), (path.name, pattern, number)
    comment = " ".join(line[1:] for line in text.splitlines() if line.startswith("#"))
    fields = set(field_types(spec.experiment.config_type))
    named = [(f, int(v)) for f, v in re.findall(r"\b([A-Za-z_]+) = (\d+)\b", comment)
             if f in fields]
    for field, value in named:
        assert value in {getattr(c, field) for c in spec.sweep.configs}, (path.name, field)
    assert claims or named  # the comment says what it runs


def test_comment_claims_catch_a_wrong_count():
    """The control: the old vary comment (1000 steps) is read as a claim the sweep fails."""
    spec = load_sweep_file(EXAMPLES / "vary_small.toml")
    claims = comment_claims("# then 1000 gradient steps of fine-tuning")
    (pattern, number), = claims
    assert int(number) not in dict(CLAIMS)[pattern](spec)


def test_a_neural_sweep_file_starts_from_its_presets_default_point():
    """``experiment = "shallow"`` with ``size``, ``steps_scale``, ``device`` and ``[grid] d``:
    the cpu preset's setting at T = 3 with its steps scaled, one config per d, the preset's
    seeds, device as an option; vision runs one config per method, as its preset does."""
    pytest.importorskip("torch")
    from lowrank_theory.simulations.neural.configs import preset_base, preset_sweep

    spec = parse_sweep({"experiment": "shallow", "size": "cpu", "steps_scale": 0.1,
                        "device": "cpu", "grid": {"d": [5, 15]}})
    base = preset_base("shallow", "cpu", 0.1)
    assert spec.sweep.configs == tuple(dataclasses.replace(base, d=d) for d in (5, 15))
    assert (base.T, base.retrain_steps, base.finetune_steps) == (3, 1000, 375)
    assert spec.sweep.seeds == preset_sweep("shallow", "cpu").seeds
    assert spec.options == {"device": "cpu"} and spec.experiment.name == "neural_shallow"
    vision = parse_sweep({"experiment": "vision", "seeds": 1, "grid": {"width": [16, 32]}})
    assert [(c.width, c.methods) for c in vision.sweep.configs][:2] == [(16, ("sr",)),
                                                                        (16, ("lora_ml",))]


@pytest.mark.parametrize(("data", "names"), [
    ({"experiment": "phase", "seeds": 1, "size": "cpu"}, ["size", "only the neural"]),
    ({"experiment": "shallow", "size": "huge"}, ["size must be one of 'cpu', 'paper'"]),
    ({"experiment": "shallow", "steps_scale": 0}, ["steps_scale", "> 0"]),
    ({"experiment": "shallow", "grid": {"steps_scale": [0.1, 1]}},
     ["grid.steps_scale", "top-level key steps_scale"]),
    ({"experiment": "shallow", "grid": {"width": 8}}, ["grid.width", "ShallowConfig"]),
    ({"experiment": "shallow", "grid": {"k": 30, "d": 5}}, ["grid point", "k must be <= d"]),
    ({"experiment": "vision", "grid": {"retrain_pairs": [[[0, 1], [2]]]}},
     ["grid.retrain_pairs[0][1]", "takes 2 items"]),
])
def test_neural_sweep_file_mistakes_are_refused_naming_the_key(data, names):
    pytest.importorskip("torch")
    with pytest.raises(SweepFileError) as exc:
        parse_sweep(data, source="n.toml")
    assert str(exc.value).startswith("n.toml: ")
    for name in names:
        assert name in str(exc.value), (name, str(exc.value))


def test_a_seed_at_the_limit_is_accepted():
    spec = parse_sweep({"experiment": "phase", "seeds": [0, 2**63 - 1]})
    assert spec.sweep.seeds == (0, 2**63 - 1)


def test_a_huge_grid_is_counted_not_built():
    """Nine axes of ten values: 10^9 points, refused in milliseconds by their product (the
    grid used to be built point by point: 1.5 s and 210 MB per 10^5 points); --force does not
    lift the hard limit, and lifts the soft one."""
    grid = {name: list(range(1, 11)) for name in ("d", "T", "N", "n", "k", "rounds",
                                                    "ft_steps", "family_seed")}
    grid["sigma"] = [0.1 * i for i in range(1, 11)]
    start = time.perf_counter()
    with pytest.raises(SweepFileError, match="1,000,000,000 configs x 1 seeds"):
        parse_sweep({"experiment": "vary", "seeds": 1, "grid": grid}, force=True)
    assert time.perf_counter() - start < 0.5
    small = {"d": list(range(100, 400)), "T": list(range(1, 401))}  # 120,000 points
    with pytest.raises(SweepFileError, match="120,000 runs.*--force"):
        parse_sweep({"experiment": "phase", "seeds": 1, "grid": small})


def test_force_lifts_the_soft_limit(monkeypatch):
    import lowrank_theory.simulations.budget as budget

    monkeypatch.setattr(budget, "MAX_RUNS", 5)
    data = {"experiment": "phase", "seeds": 3, "grid": {"T": [2, 3]}}
    with pytest.raises(SweepFileError, match="6 runs"):
        parse_sweep(data)
    assert len(parse_sweep(data, force=True).sweep.configs) == 2


@pytest.mark.parametrize(("path", "name"), [
    ("examples/recovery_d50.toml", "recovery_d50"),
    ("...toml", "sweep"), ("..toml", "sweep"), (".toml", "sweep"), ("a/../..toml", "sweep"),
    (".hidden.toml", "hidden"), ("x.y.toml", "x.y"), ("sweep.TOML", "sweep"),
    ("my sweep (v2).toml", "my_sweep_v2"), ("a\\b.toml", "a_b"), ("noext", "noext"),
    ("x" * 300 + ".toml", "x" * 100),
])
def test_output_name_is_one_safe_folder_name(path, name):
    """The default output folder of a sweep file is one plain name: never empty, ``.``,
    ``..``, hidden, or holding a separator, whatever the file is called."""
    from lowrank_theory.simulations.sweepfile import output_name

    assert output_name(path) == name
    assert "/" not in name and "\\" not in name and not name.startswith(".")
