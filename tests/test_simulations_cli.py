"""Tests of simulations/cli.py: ``lowrank-theory reproduce`` arguments, output and exit codes."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from lowrank_theory.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    (["--only", "nonsense"], "vary"),
    (["--jobs", "0"], "--jobs must be an integer >= 1"),
    (["--jobs", "two"], "--jobs must be an integer >= 1"),
    (["--executor", "threads"], "local"),
    (["--quick", "--full"], "not allowed"),
])
def test_bad_arguments_exit_2_with_valid_values(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    if argv[0] == "--only":
        for name in ("vary", "phase", "rate", "landscape"):
            assert name in err


def test_scheduler_without_dask_exits_2(capsys, tmp_path):
    assert main(["reproduce", "--scheduler", "tcp://x:1", "--out", str(tmp_path)]) == 2
    assert "--executor dask" in capsys.readouterr().err


def test_reproduce_writes_tables_and_figures_then_resumes(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["reproduce", "--quick", "--only", "rate", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "3 computed" in captured.out and str(out) in captured.out
    # Progress goes to stderr: the opening and closing lines, no bar (stderr is no terminal).
    err = captured.err.splitlines()
    assert len(err) == 2 and err[0].startswith("reproduce --quick: rate")
    assert err[1].startswith("done in")
    assert "job(s)" not in captured.out and "done in" not in captured.out
    table = pd.read_csv(out / "rate.csv")
    assert set(table["method"]) == {"LoRA-ML", "SR", "oracle"}
    for suffix in ("png", "pdf"):
        assert (out / "figures" / f"adaptation_rate.{suffix}").stat().st_size > 1000
    assert main(["reproduce", "--only", "rate", "--out", str(out), "--no-figures"]) == 0
    assert "0 computed, 3 skipped" in capsys.readouterr().out


def test_reproduce_on_a_dask_scheduler(tmp_path, capsys):
    """``--executor dask --scheduler ADDRESS`` runs the sweep on an existing cluster."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        code = main(["reproduce", "--only", "rate", "--out", str(tmp_path), "--no-figures",
                     "--executor", "dask", "--scheduler", cluster.scheduler_address])
    assert code == 0
    assert "3 computed" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "rate.csv")) == 3 * 3 * 7


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "lowrank_theory", "reproduce", "--help"],
                         capture_output=True, text=True, check=True)
    for flag in ("--quick", "--full", "--only", "--out", "--jobs", "--executor", "--scheduler"):
        assert flag in out.stdout


def _no_compute(monkeypatch):
    import lowrank_theory.simulations.runner as runner

    def fail(*args, **kwargs):
        raise AssertionError("a sweep started")

    monkeypatch.setattr(runner, "run_experiment", fail)


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_unusable_out_exits_2_before_any_compute(tmp_path, capsys, monkeypatch, where):
    _no_compute(monkeypatch)
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" if where == "file" else tmp_path / "file" / "sub"
    assert main(["reproduce", "--only", "rate", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: ") and str(out) in err
    assert "Traceback" not in err


def test_out_in_use_by_another_run_exits_2_naming_it(tmp_path, capsys, monkeypatch):
    _no_compute(monkeypatch)
    pytest.importorskip("fcntl")
    from lowrank_theory.simulations.outdir import LOCK_NAME
    from runner_toys import lock_held_by_another_process

    with lock_held_by_another_process(tmp_path / LOCK_NAME) as holder:
        assert main(["reproduce", "--only", "rate", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is in use by process {holder.pid}" in err


def test_rerun_with_nothing_to_do_draws_no_figure(tmp_path, capsys, monkeypatch):
    """A rerun that computes nothing draws nothing (nor rewrites a table)."""
    import lowrank_theory.figures.make

    out = tmp_path / "results"
    argv = ["reproduce", "--only", "rate", "--out", str(out)]
    assert main(argv) == 0
    png = (out / "figures" / "adaptation_rate.png").read_bytes()
    stamp = (out / "rate.csv").stat().st_mtime_ns
    real_save, drawn = lowrank_theory.figures.make.save_figure, []

    def save(fig, directory, name, *args, **kwargs):
        drawn.append(name)
        return real_save(fig, directory, name, *args, **kwargs)

    monkeypatch.setattr(lowrank_theory.figures.make, "save_figure", save)
    capsys.readouterr()
    assert main(argv) == 0
    assert "0 computed, 3 skipped" in capsys.readouterr().out
    assert drawn == []
    assert (out / "rate.csv").stat().st_mtime_ns == stamp
    # Negative control: a figure file that went missing is drawn again, from the same table.
    (out / "figures" / "adaptation_rate.pdf").unlink()
    assert main(argv) == 0
    assert drawn == ["adaptation_rate"]
    assert (out / "figures" / "adaptation_rate.png").read_bytes() == png


def test_corrupt_run_file_is_reported_on_stderr(tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["reproduce", "--only", "rate", "--out", str(out), "--no-figures"]
    assert main(argv) == 0
    victim = next((out / "rate" / "runs").glob("*.csv"))
    victim.write_bytes(victim.read_bytes()[:100])
    capsys.readouterr()
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"warning: run file {victim} has" in captured.err
    assert "1 computed, 2 skipped" in captured.out
    assert f"recomputed 1 invalid run file(s): {victim.name}" in captured.out


# --------------------------------------------------------------------------- sweep files
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# A 2 x 2 landscape grid at tiny size: each unit runs 60 random starts (about 0.4 s), long
# enough to be killed between two units, and its figure is one PNG.
KILL_SWEEP = """
experiment = "landscape"
seeds = 1

[grid]
d = 4
starts = 60
T = [2, 3]
k = [1, 2]
"""


def _write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_sweep_file_is_killed_resumes_and_draws_its_figures(tmp_path, capsys):
    """``reproduce --config``: SIGKILL after the first unit finished; the rerun computes only
    the other units, writes the whole table (2 x 2 configs, 60 starts each) and the figure."""
    config, out = _write(tmp_path, KILL_SWEEP), tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-m", "lowrank_theory", "reproduce", "--config",
                              str(config), "--out", str(out)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = out / "landscape" / "runs"
    deadline = time.monotonic() + 120
    while not list(runs.glob("*.json")):
        assert child.poll() is None, "the sweep ended before a unit finished"
        assert time.monotonic() < deadline, "timed out waiting for the first unit"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    finished = len(list(runs.glob("*.json")))
    assert 1 <= finished < 4
    assert not (out / "landscape.csv").exists() and not (out / "figures").exists()

    assert main(["reproduce", "--config", str(config), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"4 units: {4 - finished} computed, {finished} skipped" in stdout
    table = pd.read_csv(out / "landscape.csv")
    assert sorted(set(zip(table["T"], table["k"]))) == [(2, 1), (2, 2), (3, 1), (3, 2)]
    assert len(table) == 4 * 60 and set(table["d"]) == {4} and set(table["seed"]) == {0}
    for suffix in ("png", "pdf"):
        assert (out / "figures" / f"landscape.{suffix}").stat().st_size > 1000


@pytest.mark.parametrize("exists", [True, False])
def test_wrong_field_in_sweep_file_writes_nothing(tmp_path, capsys, monkeypatch, exists):
    """A field of another experiment's config (``solver`` in a vary sweep) exits 2 naming the
    field, before any output: the out folder stays empty (or is not even created)."""
    _no_compute(monkeypatch)
    config = _write(tmp_path, 'experiment = "vary"\nseeds = 2\n[grid]\nT = [2, 3]\n'
                              'solver = "exact"\n')
    out = tmp_path / "out"
    if exists:
        out.mkdir()
    assert main(["reproduce", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --config {config}: grid.solver: VaryConfig")
    assert "Traceback" not in err
    assert (list(out.iterdir()) == []) if exists else not out.exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--only", "phase"], "--only does not apply to --config"),
    (["--publish"], "--publish"),
])
def test_config_conflicting_options_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    _no_compute(monkeypatch)
    config = _write(tmp_path, 'experiment = "phase"\nseeds = 1\n')
    assert main(["reproduce", "--config", str(config), "--out", str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_config_excludes_the_sizes(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "--config", "x.toml", "--full"])
    assert exc.value.code == 2 and "not allowed" in capsys.readouterr().err


def test_json_output_is_only_json_and_seed_overrides_the_file(tmp_path, capsys):
    """--json: stdout parses as one JSON object (progress stays on stderr); --seed 5 runs
    the one seed 5 instead of the file's seeds."""
    config = _write(tmp_path, 'experiment = "phase"\nseeds = 3\n[grid]\nd = 5\nT = [2, 3]\n'
                              'restarts = 1\n')
    out = tmp_path / "out"
    assert main(["reproduce", "--config", str(config), "--out", str(out), "--json",
                 "--no-figures", "--seed", "5"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["out"] == str(out) and report["figures"] == []
    (phase,) = report["experiments"]
    assert (phase["experiment"], phase["units"], phase["computed"]) == ("phase", 2, 2)
    assert set(pd.read_csv(out / "phase.csv")["seed"]) == {5}
    assert "reproduce --config" in captured.err and "seeds 5" in captured.err


def test_default_out_of_a_sweep_file_is_named_after_it(tmp_path, monkeypatch, capsys):
    config = _write(tmp_path, 'experiment = "phase"\nseeds = 1\n[grid]\nd = 4\nrestarts = 1\n',
                    name="tiny_phase.toml")
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--config", str(config), "--no-figures"]) == 0
    assert (tmp_path / "results" / "tiny_phase" / "phase.csv").exists()


#: Field values that shrink each shipped example to a fraction of a second (its grid's own
#: fields keep their values, except those these replace).
TINY = {"phase": {"d": 12, "restarts": 1},
        "vary": {"d": 4, "N": 30, "n": 20, "rounds": 20, "ft_steps": 10},
        "shallow": {}}
#: Top-level keys that shrink a neural example.
TINY_TOP = {"shallow": {"steps_scale": 0.0005}}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_examples_run_at_tiny_size(path, tmp_path, capsys):
    """Each example, with its sizes shrunk (TINY) and one seed, runs from the CLI and writes
    one row group per config of its grid."""
    data = tomllib.loads(path.read_text())
    experiment = data["experiment"]
    if experiment in TINY_TOP:
        pytest.importorskip("torch")
    grid = {**data["grid"], **TINY[experiment]}
    top = {**{k: v for k, v in data.items() if k in ("size", "device")},
           **TINY_TOP.get(experiment, {})}
    lines = [f'experiment = "{experiment}"', "seeds = 1"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in top.items()]
    lines += ["[grid]", *(f"{k} = {json.dumps(v)}" for k, v in grid.items())]
    config = _write(tmp_path, "\n".join(lines) + "\n", name=path.name)
    out = tmp_path / "out"
    figures = ["--no-figures"] if experiment == "vary" else []
    assert main(["reproduce", "--config", str(config), "--out", str(out), *figures]) == 0
    table = pd.read_csv(out / f"{'neural_' if experiment in TINY_TOP else ''}{experiment}.csv")
    n_configs = math.prod(len(v) if isinstance(v, list) else 1 for v in grid.values())
    assert table["config_hash"].nunique() == n_configs
    if not figures:
        assert list((out / "figures").glob("*.png"))


@pytest.mark.parametrize("argv", [
    ["--only", "rate", "phase"],
    ["--only", "rate", "--only", "phase"],
    ["--only", "rate,phase"],
    ["--only", "rate,phase", "--only", "rate"],
])
def test_only_grammar_is_the_one_of_check(argv):
    """--only a b, --only a --only b and --only a,b select the same experiments, as in check."""
    from lowrank_theory.cli import build_parser

    assert build_parser().parse_args(["reproduce", *argv]).only == ["rate", "phase"]


# --------------------------------------------------------------------------- grids, --set
#: The vary fields that shrink a run to milliseconds.
TINY_VARY = ["d=4", "N=30", "n=20", "rounds=5", "ft_steps=6"]


def _blocks(path: Path, figure) -> list[str]:
    """The facet titles of a figure drawn again from the table at ``path``."""
    import matplotlib.pyplot as plt
    from lowrank_theory.figures import draw, load_results

    fig = draw(load_results(path.parent, path.stem), figure)
    titles = [sub._suptitle.get_text() for sub in fig.subfigs if hasattr(sub, "facet_values")]
    plt.close(fig)
    return titles


def test_vary_sweep_over_three_sigmas_draws_three_blocks_per_vary_figure(tmp_path, capsys):
    """The issue's sweep file (vary, sigma = 0.01, 0.1, 1): exit 0 where it crashed in
    plot_vary_quirks; every vary figure drawn has a block per sigma with both methods, the
    figures with nothing to draw (vary_quirks, vary_d...) are not drawn, and the report names
    them."""
    config = _write(tmp_path, 'experiment = "vary"\nseeds = 2\n[grid]\nsigma = [0.01, 0.1, 1.0]\n'
                    + "".join(f"{item}\n" for item in (s.replace("=", " = ") for s in TINY_VARY)))
    out = tmp_path / "out"
    assert main(["reproduce", "--config", str(config), "--out", str(out), "--format", "png"]) == 0
    pngs = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert pngs == ["vary", "vary_paper_quantity"]
    for stem in pngs:
        assert _blocks(out / "vary.csv", stem) == ["sigma = 0.01", "sigma = 0.1", "sigma = 1"]
    legend = {t.get_text() for t in _legend_of(out, "vary")}
    assert legend == {"SR (2 seeds)", "LoRA-ML (2 seeds)"}
    report = (out / "report.html").read_text()
    assert "figure vary_quirks not drawn: no runs with authors_quirks" in report
    assert "sigma=0.01" in report and f"reproduce --config {config}" in report


def _legend_of(out: Path, figure: str):
    import matplotlib.pyplot as plt
    from lowrank_theory.figures import draw, load_results

    fig = draw(load_results(out, "vary"), figure)
    texts = list(fig.legends[0].get_texts())
    plt.close(fig)
    return texts


def test_set_sweeps_fields_of_one_experiment_like_a_file(tmp_path, capsys):
    """``--only vary --set sigma=0.01,0.1,1 --set T=3``: the Cartesian product of the values,
    with the size's seeds unless --seed says otherwise; the same configs as the sweep file
    with that grid."""
    from lowrank_theory.simulations.sweepfile import parse_sweep

    out = tmp_path / "out"
    sets = [arg for item in ["sigma=0.01,0.1,1", "T=3", *TINY_VARY] for arg in ("--set", item)]
    assert main(["reproduce", "--only", "vary", *sets, "--seed", "4", "--no-figures",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out / "vary.csv", dtype={"config_hash": str})
    grid = {"sigma": [0.01, 0.1, 1.0], "T": 3, "d": 4, "N": 30, "n": 20, "rounds": 5,
            "ft_steps": 6}
    spec = parse_sweep({"experiment": "vary", "seeds": [4], "grid": grid})
    assert set(table["config_hash"]) == {c.config_hash() for c in spec.sweep.configs}
    assert sorted(set(table["sigma"])) == [0.01, 0.1, 1.0] and set(table["seed"]) == {4}


@pytest.mark.parametrize(("argv", "message"), [
    (["--only", "vary", "--set", "solver=exact"],
     "error: --set: grid.solver: VaryConfig (experiment 'vary') has no field 'solver'"),
    (["--only", "vary", "--set", "sigma=0.1,x"], "error: --set: grid.sigma[1] must be a number"),
    (["--only", "vary", "--set", "sigma"], "error: --set 'sigma': write FIELD=VALUE"),
    (["--only", "vary", "--set", "T=2", "--set", "T=3"], "--set T: the field is set twice"),
    (["--set", "T=3"], "--set sweeps the fields of one experiment: name it with --only NAME"),
    (["--only", "vary,rate", "--set", "T=3"], "--set sweeps the fields of one experiment"),
    (["--only", "vary", "--set", "T=3", "--publish"], "--publish"),
])
def test_set_mistakes_exit_2_before_anything_is_written(tmp_path, capsys, monkeypatch, argv,
                                                        message):
    """A --set mistake is reported as a sweep file's would be (the same validation), exit 2,
    and nothing is written."""
    _no_compute(monkeypatch)
    out = tmp_path / "out"
    assert main(["reproduce", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_set_extends_a_sweep_files_grid(tmp_path, capsys):
    """``--config FILE --set FIELD=V``: the file's grid with the field replaced or added."""
    config = _write(tmp_path, 'experiment = "phase"\nseeds = 1\n[grid]\nd = 4\nT = [2, 3]\n'
                              "restarts = 1\n")
    out = tmp_path / "out"
    assert main(["reproduce", "--config", str(config), "--set", "T=4", "--set", "k=1,2",
                 "--no-figures", "--out", str(out)]) == 0
    table = pd.read_csv(out / "phase.csv")
    assert sorted(set(zip(table["T"], table["k"]))) == [(4, 1), (4, 2)]


def test_figure_options_reach_the_files(tmp_path, capsys):
    """--format svg --dpi 72 --style FILE --band minmax: an SVG whose text uses the style's
    font size, a PNG of 72 dpi, and the band named in the title; a bad style file exits 2
    naming it before any computation."""
    style = tmp_path / "big.mplstyle"
    style.write_text("font.size: 13\naxes.titlesize: 13\n")
    out = tmp_path / "out"
    base = ["reproduce", "--only", "rate", "--set", "n_grid=[20,100]", "--set", "N=200",
            "--out", str(out)]
    assert main([*base, "--format", "svg,png", "--dpi", "72", "--style", str(style),
                 "--band", "minmax"]) == 0
    svg = (out / "figures" / "adaptation_rate.svg").read_text()
    assert "min-max" in svg and re.search(r"font-size: 13(\.0)?px", svg)
    from lowrank_theory.figures import draw, load_results
    from matplotlib.image import imread

    fig = draw(load_results(out, "rate"))
    width_in = fig.get_figwidth()
    png = imread(out / "figures" / "adaptation_rate.png")
    assert png.shape[1] < 72 * width_in * 1.2  # tight bounding box: at most the figure width
    assert not (out / "figures" / "adaptation_rate.pdf").exists()
    bad = tmp_path / "bad.mplstyle"
    bad.write_text("font.size: large-ish\n")
    capsys.readouterr()
    assert main([*base, "--style", str(bad)]) == 2
    assert f"--style: style file {bad}" in capsys.readouterr().err


def test_a_figure_past_the_facet_limit_is_skipped_with_a_message(tmp_path, capsys):
    """Nine noise levels of rate (nine facets, one past the limit): exit 0, the table is
    written, the figure is not, and stderr and the report say which figure and why."""
    from lowrank_theory.figures.facets import MAX_FACETS

    sigmas = ",".join(f"{0.1 * (i + 1):g}" for i in range(MAX_FACETS + 1))
    out = tmp_path / "out"
    assert main(["reproduce", "--only", "rate", "--set", f"sigma={sigmas}", "--set", "N=100",
                 "--set", "n_grid=[20]", "--seed", "0", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: figure adaptation_rate skipped: sigma gives 9 facets, more than the 8" in err
    assert pd.read_csv(out / "rate.csv")["sigma"].nunique() == MAX_FACETS + 1
    assert not list((out / "figures").glob("adaptation_rate.*"))
    assert "figure adaptation_rate skipped" in (out / "report.html").read_text()
