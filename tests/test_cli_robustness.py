"""The command line's guard: bad input exits 2 with a message naming it, never a traceback.

A corpus of bad inputs (flags, sweep files, seeds, ``--out`` layouts, scheduler addresses,
data folders) goes through every entry point (``lowrank-theory reproduce``, ``neural``,
``check`` and ``python -m lowrank_theory.figures``) in-process, and a few through a real
process; each must exit 2, with a message holding the name of what was wrong, and write nothing
outside its ``--out``. Hypothesis then generates sweep files and argument lists for
``reproduce --dry-run`` and asserts exit codes in {0, 2}. The faults that are repaired rather
than refused (a full disk, then a rerun; a sweep file named ``...toml``) are tested beside.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import lowrank_theory.simulations.executors as executors
import lowrank_theory.simulations.outdir as outdir
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lowrank_theory.cli import main as cli_main
from lowrank_theory.figures.__main__ import main as figures_main
from lowrank_theory.simulations.experiments import EXPERIMENTS
from lowrank_theory.simulations.runner import units_of
from lowrank_theory.simulations.sweepfile import field_types, load_sweep_file

REPO = Path(__file__).resolve().parent.parent
#: A sweep of two tiny phase configs (milliseconds each).
TINY = 'experiment = "phase"\nseeds = 1\n[grid]\nd = 4\nrestarts = 1\nT = [1, 2]\n'

try:
    import torch  # noqa: F401

    HAS_TORCH = True
except ImportError:  # pragma: no cover - the torch extra is installed by make test
    HAS_TORCH = False


def _exit_code(entry, argv) -> int:
    try:
        code = entry(argv)
    except SystemExit as exc:  # argparse's usage errors, --help
        code = exc.code
    return 0 if code is None else code


ENTRIES = {
    "reproduce": lambda argv: cli_main(["reproduce", *argv]),
    "neural": lambda argv: cli_main(["neural", *argv]),
    "check": lambda argv: cli_main(["check", *argv]),
    "describe": lambda argv: cli_main(["describe", *argv]),
    "figures": figures_main,
}


def _free_port() -> int:
    with socket.socket() as s:  # nobody listens on it once it is closed
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text))
    return path


def _tiny(tmp: Path) -> Path:
    return _write(tmp / "tiny.toml", TINY)


def _unit_path(tmp: Path, suffix: str) -> Path:
    """Where the first unit of the tiny sweep keeps its run file (or sidecar)."""
    spec = load_sweep_file(_tiny(tmp))
    unit = units_of(spec.sweep, spec.experiment.seeds_per_unit)[0]
    return tmp / "out" / "phase" / "runs" / f"{unit.key}{suffix}"


def _block(path: Path, kind: str) -> None:
    """Put a folder (``kind="folder"``) or a file where ``path`` belongs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "folder":
        path.mkdir()
        (path / "keep.txt").write_text("the user's")
    else:
        path.write_text("the user's")


def _config(text: str):
    """A reproduce case running the sweep file ``text`` into ``tmp/out``."""
    def build(tmp, monkeypatch):
        return ["--config", str(_write(tmp / "bad.toml", text)), "--out", str(tmp / "out")]
    return build


def _layout(block):
    """A reproduce case for the tiny sweep with ``block(tmp)`` done to its output folder."""
    def build(tmp, monkeypatch):
        block(tmp)
        return ["--config", str(_tiny(tmp)), "--out", str(tmp / "out")]
    return build


def _argv(*argv):
    return lambda tmp, monkeypatch: [a.format(tmp=tmp) for a in argv]


def _beside_a_file(*argv):
    """Arguments that name ``{tmp}/afile``, a plain file the builder writes first."""
    def build(tmp, monkeypatch):
        (tmp / "afile").write_text("not a folder")
        return [a.format(tmp=tmp) for a in argv]
    return build


def _unreachable(command, *extra):
    def build(tmp, monkeypatch):
        monkeypatch.setattr(executors, "SCHEDULER_TIMEOUT", 0.5)
        return [*extra, "--executor", "dask", "--scheduler", f"127.0.0.1:{_free_port()}",
                "--out", str(tmp / "out")]
    return build


def _symlink_lock(tmp):
    (tmp / "out").mkdir()
    (tmp / "precious").write_text("keep me")
    (tmp / "out" / outdir.LOCK_NAME).symlink_to(tmp / "precious")


def _nine_axes():
    axes = {name: list(range(1, 11)) for name in ("d", "T", "N", "n", "k", "rounds",
                                                    "ft_steps", "family_seed")}
    return ('experiment = "vary"\nseeds = 1\n[grid]\n'
            + "".join(f"{k} = {v}\n" for k, v in axes.items())
            + "sigma = [" + ", ".join(str(0.1 * i) for i in range(1, 11)) + "]\n")


def _hostile_cifar(tmp):
    """A CIFAR-10 folder whose batches each hold a dict key nested a million deep."""
    folder = tmp / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    bomb = b"\x80\x02}" + b")" + b"\x85" * 10**6 + b"K\x01s."
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(bomb)
    return tmp / "data"


#: name -> (entry point, argv builder (tmp, monkeypatch), words the message must hold)
CORPUS = {
    # -------------------------------------------------------------- reproduce: flags
    "jobs-zero": ("reproduce", _argv("--jobs", "0"), "--jobs must be an integer >= 1"),
    "jobs-long-text": ("reproduce", _argv("--jobs", "9" * 5000), "--jobs must be"),
    "seed-negative": ("reproduce", _argv("--seed", "-1"), "--seed must be an integer in 0.."),
    "seed-2**64": ("reproduce", _argv("--seed", str(2**64)), str(2**64)),
    "seeds-zero": ("reproduce", _argv("--seeds", "0"), "--seeds must be"),
    "seeds-1e9": ("reproduce", _argv("--seeds", "1000000000"), "--seeds must be an integer in"),
    "seeds-past-the-limit": ("reproduce", _argv("--only", "phase", "--seeds", "200000",
                                                "--out", "{tmp}/out"), "--force"),
    "only-unknown": ("reproduce", _argv("--only", "nope"), "invalid name 'nope'"),
    "unknown-flag": ("reproduce", _argv("--bogus"), "unrecognized arguments: --bogus"),
    "out-empty": ("reproduce", _argv("--out", ""), "--out must name a folder"),
    "scheduler-not-an-address": ("reproduce", _argv("--executor", "dask", "--scheduler",
                                                    "not an address"), "tcp://host:port"),
    "scheduler-without-dask": ("reproduce", _argv("--scheduler", "tcp://127.0.0.1:1",
                                                  "--out", "{tmp}/out"), "--executor dask"),
    "scheduler-unreachable": ("reproduce", _unreachable("reproduce", "--only", "rate"),
                              "cannot reach the dask scheduler at tcp://127.0.0.1:"),
    # -------------------------------------------------------------- reproduce: sweep files
    "config-absent": ("reproduce", _argv("--config", "{tmp}/absent.toml", "--out", "{tmp}/out"),
                      "absent.toml: cannot read it"),
    "config-a-folder": ("reproduce", _argv("--config", "{tmp}", "--out", "{tmp}/out"),
                        "cannot read it"),
    "config-binary": ("reproduce", _config(bytes(range(256))), "not valid TOML"),
    "config-nested-deep": ("reproduce", _config("a = " + "[" * 100_000 + "]" * 100_000),
                           "not valid TOML"),
    "config-experiment-a-list": ("reproduce", _config('experiment = ["phase"]\nseeds = 1\n'),
                                 "experiment must be one of"),
    "config-seed-2**64": ("reproduce", _config(f'experiment = "phase"\nseeds = [{2**64}]\n'),
                          "seeds[0] must lie in 0..2**63-1"),
    "config-seeds-1e9": ("reproduce", _config('experiment = "phase"\nseeds = 1000000000\n'),
                         "1,000,000,000 runs"),
    "config-grid-1e9": ("reproduce", _config(_nine_axes()), "1,000,000,000 configs"),
    "config-d-100000": ("reproduce", _config('experiment = "phase"\nseeds = 1\n'
                                             '[grid]\nd = 100000\n'),
                        "PhaseConfig(d=100000"),
    "config-grid-a-list": ("reproduce", _config('experiment = "phase"\nseeds = 1\ngrid = [1]\n'),
                           "grid must be a table"),
    "config-unknown-option": ("reproduce", _config('experiment = "phase"\nseeds = 1\n'
                                                   '[options]\ndevice = "cuda"\n'),
                              "options.device"),
    "config-with-only": ("reproduce", lambda tmp, mp: ["--config", str(_tiny(tmp)), "--only",
                                                       "rate", "--out", str(tmp / "out")],
                         "--only does not apply"),
    # -------------------------------------------------------------- reproduce: --out layouts
    "out-a-file": ("reproduce", _layout(lambda t: _block(t / "out", "file")),
                   "exists and is not a folder"),
    "out-under-a-file": ("reproduce", lambda tmp, mp: [
        "--config", str(_tiny(tmp)), "--out", str(_write(tmp / "f", "x") / "sub")],
        "cannot create output folder"),
    "lock-a-folder": ("reproduce", _layout(lambda t: _block(t / "out" / outdir.LOCK_NAME,
                                                            "folder")),
                      f"{outdir.LOCK_NAME} is a folder"),
    "lock-a-symlink": ("reproduce", _layout(_symlink_lock), "is a symbolic link"),
    "experiment-folder-a-file": ("reproduce", _layout(lambda t: _block(t / "out" / "phase",
                                                                       "file")),
                                 "phase is a file, not a folder"),
    "runs-a-file": ("reproduce", _layout(lambda t: _block(t / "out" / "phase" / "runs",
                                                          "file")),
                    "runs exists and is not a folder"),
    "run-file-a-folder": ("reproduce", _layout(lambda t: _block(_unit_path(t, ".csv"),
                                                                "folder")),
                          ".csv is a folder"),
    "sidecar-a-folder": ("reproduce", _layout(lambda t: _block(_unit_path(t, ".json"),
                                                               "folder")),
                         ".json is a folder"),
    "table-a-folder": ("reproduce", _layout(lambda t: _block(t / "out" / "phase.csv",
                                                             "folder")),
                       "phase.csv is a folder"),
    # -------------------------------------------------------------- neural
    "neural-experiment-unknown": ("neural", _argv("--experiment", "nope"), "invalid choice"),
    "neural-steps-scale-overflow": ("neural", _argv("--experiment", "shallow", "--steps-scale",
                                                    "1e308"), "--steps-scale must be"),
    "neural-steps-scale-nan": ("neural", _argv("--experiment", "shallow", "--steps-scale",
                                               "nan"), "--steps-scale must be"),
    "neural-seed-2**64": ("neural", _argv("--experiment", "shallow", "--seed", str(2**64)),
                          "--seed must be"),
    "neural-seeds-1e9": ("neural", _argv("--experiment", "shallow", "--seeds", "1000000000"),
                         "--seeds must be"),
    "neural-seeds-past-the-limit": ("neural", _argv("--experiment", "shallow", "--seeds",
                                                    "200000", "--out", "{tmp}/out"), "--force"),
    "neural-out-empty": ("neural", _argv("--experiment", "shallow", "--out", ""),
                         "--out must name a folder"),
    "neural-device-unknown": ("neural", _argv("--experiment", "shallow", "--device", "tpu",
                                              "--out", "{tmp}/out"), "--device"),
    "neural-scheduler-not-an-address": ("neural", _argv("--experiment", "shallow",
                                                        "--executor", "dask", "--scheduler",
                                                        "not an address"), "tcp://host:port"),
    "neural-scheduler-unreachable": ("neural", _unreachable("neural", "--experiment",
                                                            "shallow", "--jobs", "1"),
                                     "cannot reach the dask scheduler"),
    "neural-cifar-not-given": ("neural", _argv("--experiment", "vision", "--size", "paper",
                                               "--out", "{tmp}/out"), "--data-dir"),
    "neural-cifar-missing": ("neural", _argv("--experiment", "vision", "--size", "paper",
                                             "--data-dir", "{tmp}", "--out", "{tmp}/out"),
                             "cifar-10-batches-py"),
    "neural-cifar-hostile": ("neural", lambda tmp, mp: [
        "--experiment", "vision", "--size", "paper", "--data-dir", str(_hostile_cifar(tmp)),
        "--seed", "0", "--jobs", "1", "--out", str(tmp / "out")], "nested more than 32 deep"),
    "neural-out-a-file": ("neural", lambda tmp, mp: [
        "--experiment", "shallow", "--jobs", "1", "--out", str(_write(tmp / "f", "x"))],
        "--out"),
    "neural-lock-a-folder": ("neural", lambda tmp, mp: [
        "--experiment", "shallow", "--jobs", "1", "--seed", "0", "--out",
        str(_block(tmp / "out" / outdir.LOCK_NAME, "folder") or tmp / "out")],
        f"{outdir.LOCK_NAME} is a folder"),
    # -------------------------------------------------------------- check
    "check-seed-negative": ("check", _argv("--seed", "-1"), "--seed must be"),
    "check-seed-2**64": ("check", _argv("--seed", str(2**64)), "--seed must be"),
    "check-only-unknown": ("check", _argv("--only", "nope"), "invalid name 'nope'"),
    "check-unknown-flag": ("check", _argv("--bogus"), "unrecognized arguments"),
    # -------------------------------------------------------------- describe
    "describe-unknown": ("describe", _argv("nope"), "EXPERIMENT must be one of"),
    "describe-unknown-flag": ("describe", _argv("--bogus"), "unrecognized arguments"),
    "describe-docs-a-file": ("describe", _beside_a_file("--docs", "{tmp}/afile"), "--docs"),
    "describe-docs-unmakeable": ("describe", _beside_a_file("--docs", "{tmp}/afile/sub"),
                                 "--docs"),
    # -------------------------------------------------------------- figures
    "figures-results-a-file": ("figures", lambda tmp, mp: [str(_write(tmp / "r.csv", "a\n"))],
                               "is a file"),
    "figures-out-empty": ("figures", _argv("{tmp}", "--out", ""), "must name a folder"),
    "figures-only-unknown": ("figures", _argv("{tmp}", "--only", "nope"), "invalid choice"),
}


@pytest.fixture(scope="module")
def phase_results(tmp_path_factory):
    """A results folder with the tiny sweep's phase table (computed once)."""
    tmp = tmp_path_factory.mktemp("phase-results")
    assert cli_main(["reproduce", "--config", str(_tiny(tmp)), "--out", str(tmp / "res"),
                     "--no-figures"]) == 0
    return tmp / "res"


def _figures_layout(block):
    def build(tmp, monkeypatch, results):
        res = tmp / "res"
        shutil.copytree(results, res)
        block(res)
        return [str(res), "--only", "phase"]
    return build


#: Figure cases that need a table: name -> (argv builder, words of the message).
FIGURE_LAYOUTS = {
    "figures-table-a-folder": (_figures_layout(lambda r: (r / "phase.csv").unlink() or _block(
        r / "phase.csv", "folder")), "phase.csv is not a file"),
    "figures-out-a-file": (_figures_layout(lambda r: _block(r / "figures", "file")),
                           "figures exists and is not a folder"),
    "figures-manifest-a-folder": (_figures_layout(lambda r: _block(
        r / "figures" / "manifest.json", "folder")), "manifest.json"),
    "figures-figure-a-folder": (_figures_layout(lambda r: _block(
        r / "figures" / "phase_diagram.png", "folder")), "phase_diagram.png"),
}


def _assert_refused(code, err, words, cwd):
    assert code == 2, err
    assert "Traceback" not in err
    assert words in err, err
    assert err.count("\n") < 20 and len(err) < 3000, err  # short, whatever the input
    assert list(cwd.iterdir()) == [], "something was written outside --out"


@pytest.mark.parametrize("name", list(CORPUS))
def test_bad_input_exits_2_naming_it(name, tmp_path, monkeypatch, capsys):
    command, build, words = CORPUS[name]
    if command == "neural" and not HAS_TORCH:
        pytest.skip("needs the torch extra")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    argv = build(tmp_path, monkeypatch)
    code = _exit_code(ENTRIES[command], argv)
    _assert_refused(code, capsys.readouterr().err, words, cwd)
    if (tmp_path / "precious").exists():
        assert (tmp_path / "precious").read_text() == "keep me"


@pytest.mark.parametrize("name", list(FIGURE_LAYOUTS))
def test_figures_on_an_odd_layout_exit_2_naming_the_path(name, phase_results, tmp_path,
                                                         monkeypatch, capsys):
    build, words = FIGURE_LAYOUTS[name]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    code = _exit_code(figures_main, build(tmp_path, monkeypatch, phase_results))
    _assert_refused(code, capsys.readouterr().err, words, cwd)


def test_nothing_is_written_before_the_scheduler_answers(tmp_path, monkeypatch, capsys):
    """An unreachable scheduler is found before --out or its lock exist (it took 32 s and
    left both behind)."""
    monkeypatch.setattr(executors, "SCHEDULER_TIMEOUT", 0.5)
    out = tmp_path / "out"
    assert cli_main(["reproduce", "--only", "rate", "--executor", "dask", "--scheduler",
                     f"tcp://127.0.0.1:{_free_port()}", "--out", str(out)]) == 2
    assert not out.exists()
    assert "within 0.5 s" in capsys.readouterr().err


def test_a_real_process_prints_no_traceback(tmp_path):
    """The corpus runs in-process; one real process shows what a user sees on stderr."""
    config = _write(tmp_path / "in.toml", 'experiment = ["phase"]\nseeds = 1\n')
    child = subprocess.run([sys.executable, "-m", "lowrank_theory", "reproduce", "--config",
                            str(config)], capture_output=True, text=True, cwd=tmp_path,
                           timeout=120)
    assert child.returncode == 2 and "Traceback" not in child.stderr
    assert child.stderr.startswith(f"error: --config {config}: experiment must be one of")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.toml"]


# --------------------------------------------------------------------------- repaired faults
def test_figures_redraw_over_damaged_manifests(phase_results, tmp_path, capsys):
    """A table manifest or figure manifest whose ``files`` is a list: ignored with a warning on
    stderr, the figure drawn again (exit 0)."""
    res = tmp_path / "res"
    shutil.copytree(phase_results, res)
    assert figures_main([str(res), "--only", "phase"]) == 0
    figures = json.loads((res / "figures" / "manifest.json").read_text())
    figures["phase_diagram"]["files"] = ["phase_diagram.png"]
    (res / "figures" / "manifest.json").write_text(json.dumps(figures))
    table = json.loads((res / "phase.json").read_text())
    table["files"] = list(table["files"])
    (res / "phase.json").write_text(json.dumps(table))
    capsys.readouterr()
    assert figures_main([str(res), "--only", "phase"]) == 0
    assert "warning: table manifest" in capsys.readouterr().err  # said on stderr
    assert isinstance(json.loads((res / "figures" / "manifest.json").read_text())[
        "phase_diagram"]["files"], dict)


def test_a_full_disk_exits_2_keeping_finished_units(tmp_path, monkeypatch, capsys):
    """ENOSPC while the second unit is written: exit 2 naming its file, the first unit is
    kept, and the rerun computes only what is missing."""
    config = _write(tmp_path / "three.toml", TINY.replace("T = [1, 2]", "T = [1, 2, 3]"))
    out = tmp_path / "out"
    real, calls = outdir._write_fully, []

    def fill_up(fd, data):
        calls.append(len(data))
        if len(calls) == 6:  # 3 config records, unit 1's run file and sidecar, unit 2's file
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(outdir, "_write_fully", fill_up)
    assert cli_main(["reproduce", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    second = units_of(load_sweep_file(config).sweep, None)[1].key
    assert (f"error: no space left while writing {out / 'phase' / 'runs' / second}.csv; "
            "finished units are kept; free space and rerun") in err
    assert "Traceback" not in err
    assert len(list((out / "phase" / "runs").glob("*.json"))) == 1
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(outdir, "_write_fully", real)
    assert cli_main(["reproduce", "--config", str(config), "--out", str(out),
                     "--no-figures"]) == 0
    assert "3 units: 2 computed, 1 skipped" in capsys.readouterr().out


def test_a_full_disk_while_drawing_exits_2(phase_results, tmp_path, monkeypatch, capsys):
    import matplotlib.figure

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

    res = tmp_path / "res"
    shutil.copytree(phase_results, res)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    assert figures_main([str(res), "--only", "phase"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert cli_main(["reproduce", "--config", str(_tiny(tmp_path)), "--out", str(res)]) == 2
    assert "no space left while writing" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["...toml", "..toml", ".toml"])
def test_a_sweep_file_name_never_leads_out_of_the_results(tmp_path, monkeypatch, capsys, name):
    """Run without --out from a folder holding another run's results: everything goes to
    results/sweep, and nothing else in the folder changes (``...toml`` wrote phase/, phase.csv,
    .lock and figures/ into it; ``..toml`` overwrote results/phase.csv)."""
    work = tmp_path / "work"
    other = _write(work / "results" / "phase.csv", "another run's table\n")
    config = _write(work / name, TINY)
    monkeypatch.chdir(work)
    figures = name == "...toml"  # the figures are drawn once: where they go is the same
    assert cli_main(["reproduce", "--config", name, *([] if figures else ["--no-figures"])]) == 0
    assert other.read_text() == "another run's table\n"
    assert sorted(p.name for p in work.iterdir()) == sorted([name, "results"])
    assert sorted(p.name for p in (work / "results").iterdir()) == ["phase.csv", "sweep"]
    assert (work / "results" / "sweep" / "phase.csv").exists()
    assert not figures or list((work / "results" / "sweep" / "figures").glob("*.png"))
    assert config.read_text() == TINY


def test_dry_run_writes_nothing_and_says_what_would_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main(["reproduce", "--config", str(_tiny(tmp_path)), "--out", str(out),
                     "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (phase,) = report["experiments"]
    assert (phase["configs"], phase["seeds"], phase["units"]) == (2, 1, 2)
    assert 0 < phase["memory_bytes"] < 2**20
    assert not out.exists()


def test_force_lifts_the_memory_limit_up_to_the_dry_run(tmp_path, capsys):
    config = _write(tmp_path / "big.toml", 'experiment = "phase"\nseeds = 1\n[grid]\n'
                                           'd = 100000\n')
    argv = ["reproduce", "--config", str(config), "--out", str(tmp_path / "o"), "--dry-run"]
    assert cli_main(argv) == 2
    assert "373 GiB" in capsys.readouterr().err
    assert cli_main([*argv, "--force"]) == 0
    assert "373 GiB" in capsys.readouterr().out


# --------------------------------------------------------------------------- hypothesis
def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if (
            math.isinf(value)) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _toml(data: dict) -> str:
    """``data`` as TOML: scalars and lists first, then each table as a [section]."""
    head = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in data.items()
            if not isinstance(v, dict)]
    tables = [f"[{json.dumps(k)}]\n" + "\n".join(f"{json.dumps(kk)} = {_toml_value(vv)}"
                                                 for kk, vv in v.items())
              for k, v in data.items() if isinstance(v, dict)]
    return "\n".join(head) + "\n" + "\n\n".join(tables) + "\n"


FIELDS = ["d", "T", "k", "N", "n", "sigma", "restarts", "solver", "starts", "rounds",
          "ft_steps", "n_grid", "family", "authors_quirks", "population", "max_rank", "bogus"]
SCALARS = st.one_of(
    st.integers(-3, 12), st.sampled_from([0, 2**63, 2**64, 10**9, 100_000]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.sampled_from(["exact", "lbfgs", "paper", "per-run", "", "phase", "x" * 200]),
    st.text(max_size=8))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4),
                   st.lists(st.lists(st.integers(1, 40), max_size=3), max_size=2))


def _values_of(hint):
    """Values of the type a config field declares: a grid entry that may well be valid."""
    one = {int: st.integers(1, 6), float: st.floats(0.01, 2.0), bool: st.booleans(),
           str: st.sampled_from(["exact", "lbfgs", "paper", "per-run", "per-seed"])}.get(hint)
    if one is None:  # tuple[int, ...]: one increasing list, or several
        one = st.lists(st.integers(1, 60), min_size=1, max_size=3, unique=True).map(sorted)
        return st.one_of(one, st.lists(one, min_size=1, max_size=2))
    return st.one_of(one, st.lists(one, min_size=1, max_size=3, unique=True))


@st.composite
def sweep_files(draw):
    """A sweep file of a real experiment with fields of the right types, and sometimes one
    key replaced by anything (so both outcomes, 0 and 2, are drawn)."""
    name = draw(st.sampled_from(list(EXPERIMENTS)))
    types = field_types(EXPERIMENTS[name].config_type)
    fields = draw(st.lists(st.sampled_from(sorted(types)), unique=True, max_size=3))
    data = {"experiment": name,
            "seeds": draw(st.one_of(st.integers(1, 3), st.lists(st.integers(0, 9), min_size=1,
                                                                max_size=3, unique=True))),
            "grid": {field: draw(_values_of(types[field])) for field in fields}}
    if draw(st.booleans()):
        key = draw(st.sampled_from(["experiment", "seeds", "grid", "options", "extra"]))
        data[key] = draw(st.one_of(VALUES, st.dictionaries(st.sampled_from(FIELDS), VALUES,
                                                           max_size=3)))
    return data


@given(data=sweep_files(), raw=st.one_of(st.none(), st.binary(max_size=64)))
def test_generated_sweep_files_exit_0_or_2(data, raw):
    """Any sweep file (a generated TOML document, or raw bytes) is either accepted by
    ``reproduce --dry-run`` (0) or refused with a message (2); nothing is ever written."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.toml"
        path.write_bytes(raw if raw is not None else _toml(data).encode())
        out = Path(tmp) / "out"
        code = _exit_code(ENTRIES["reproduce"], ["--config", str(path), "--out", str(out),
                                                 "--dry-run"])
        assert code in (0, 2)
        assert not out.exists()


#: Each option with values it accepts and values it refuses; switches; stray tokens.
OPTION_VALUES = {
    "--only": ["phase", "rate,landscape", "nope", ""], "--seed": ["0", "7", "-1", str(2**64), "x"],
    "--seeds": ["1", "3", "0", "200000", "1000000000"], "--jobs": ["1", "2", "0", "two"],
    "--executor": ["local", "dask", "threads"], "--out": ["out", "", "a/b"],
    "--scheduler": ["tcp://10.0.0.5:8786", "not an address", "127.0.0.1:0"],
    "--config": ["absent.toml", ""],
}
SWITCHES = ["--quick", "--full", "--no-figures", "--publish", "--json", "--force"]
ARGUMENTS = st.lists(st.one_of(
    st.sampled_from(SWITCHES).map(lambda flag: [flag]),
    st.sampled_from(sorted(OPTION_VALUES)).flatmap(
        lambda flag: st.sampled_from(OPTION_VALUES[flag]).map(lambda value: [flag, value])),
    st.sampled_from(["--bogus", "phase", "-x", "--", "--seed=3"]).map(lambda token: [token]),
), max_size=5).map(lambda groups: [token for group in groups for token in group])


@given(argv=ARGUMENTS)
def test_generated_argument_lists_exit_0_or_2(argv):
    """Any argument list for ``reproduce --dry-run`` exits 0 or 2, never with an exception,
    and writes nothing into the current folder."""
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            code = _exit_code(ENTRIES["reproduce"], [*argv, "--dry-run"])
            assert os.listdir(tmp) == []
        finally:
            os.chdir(cwd)
        assert code in (0, 2)


def test_the_guard_covers_every_entry_point():
    """The corpus holds cases for every subcommand and for the figures' entry point."""
    from lowrank_theory.cli import SUBCOMMANDS

    commands = [command for command, _, _ in CORPUS.values()] + ["figures"] * len(FIGURE_LAYOUTS)
    assert {m.__name__.rsplit(".", 1)[-1] for m in SUBCOMMANDS} | {"figures"} == set(commands)
    assert pd.Series(commands).value_counts().min() >= 4
