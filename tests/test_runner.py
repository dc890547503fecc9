"""Tests of simulations/runner.py: resume after SIGKILL, atomic files, determinism, dask."""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from figures.io import read_table
from simulations.configs import PhaseConfig, Sweep
from simulations.experiments import EXPERIMENTS
from simulations.runner import (
    DaskExecutor,
    Experiment,
    LocalExecutor,
    atomic_write_text,
    drop_provenance,
    make_executor,
    run_experiment,
    units_of,
)

# A tiny real experiment: population LoRA-ML on a 2 x 2 grid, 2 seeds, one unit per seed
# (8 units, well under 1 s).
SMALL_PHASE = Sweep(tuple(PhaseConfig(d=5, T=T, k=k, restarts=1) for k in (1, 2) for T in (2, 3)),
                    seeds=(0, 1))
PHASE = dataclasses.replace(EXPERIMENTS["phase"], seeds_per_unit=1)

# An experiment whose runs take a while, so a sweep can be killed midway. It lives in a file
# the child process imports (run functions must be importable by workers).
SLOW_MODULE = textwrap.dedent('''
    import time
    import pandas as pd
    from simulations.configs import PhaseConfig, Sweep
    from simulations.runner import Experiment

    def run(config, seeds):
        time.sleep(0.15)
        return pd.DataFrame({"seed": list(seeds), "value": [config.T * 100 + s for s in seeds]})

    SWEEP = Sweep(tuple(PhaseConfig(d=4, T=T, k=1) for T in range(1, 5)), seeds=(0, 1, 2))
    EXPERIMENT = Experiment("slow", "slow", "none", run, SWEEP, SWEEP)
''')


def _slow_experiment(tmp_path: Path):
    (tmp_path / "slow_module.py").write_text(SLOW_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        import slow_module

        return importlib.reload(slow_module).EXPERIMENT
    finally:
        sys.path.remove(str(tmp_path))


def test_sigkill_midway_then_resume_skips_finished_runs(tmp_path):
    """Kill a sweep with SIGKILL after some runs finished; the rerun recomputes only the rest."""
    experiment = _slow_experiment(tmp_path)  # writes slow_module.py for the child too
    out = tmp_path / "out"
    script = (f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
              "from simulations.runner import run_experiment\n"
              "from slow_module import EXPERIMENT\n"
              f"run_experiment(EXPERIMENT, {str(out)!r}, progress=False)\n")
    child = subprocess.Popen([sys.executable, "-c", script])
    runs = out / "slow" / "runs"
    deadline = time.monotonic() + 60
    while len(list(runs.glob("*.csv"))) < 3:
        assert child.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    finished = {p.name for p in runs.glob("*.csv")}
    assert 3 <= len(finished) < 12
    assert not (out / "slow.csv").exists()  # the combined table is written only at the end
    for path in runs.glob("*.csv"):  # every run file is complete
        assert len(pd.read_csv(path)) == 1

    result = run_experiment(experiment, out, progress=False)
    assert result.n_skipped == len(finished)
    assert result.n_computed == 12 - len(finished)
    assert "skipped" in result.summary()
    assert not list(runs.glob(".*.tmp"))
    fresh = run_experiment(experiment, tmp_path / "fresh", progress=False)
    pd.testing.assert_frame_equal(drop_provenance(read_table(out, "slow")),
                                  drop_provenance(read_table(tmp_path / "fresh", "slow")))
    assert fresh.n_computed == 12


def test_rerun_computes_nothing_and_changed_config_is_not_mixed(tmp_path):
    experiment = PHASE
    first = run_experiment(experiment, tmp_path, sweep=SMALL_PHASE, progress=False)
    assert (first.n_computed, first.n_skipped) == (8, 0)
    again = run_experiment(experiment, tmp_path, sweep=SMALL_PHASE, progress=False)
    assert (again.n_computed, again.n_skipped) == (0, 8)

    changed = Sweep(tuple(PhaseConfig(d=5, T=c.T, k=c.k, restarts=2) for c in SMALL_PHASE.configs),
                    seeds=(0, 1))
    result = run_experiment(experiment, tmp_path, sweep=changed, progress=False)
    assert (result.n_computed, result.n_skipped) == (8, 0)
    table = read_table(tmp_path, "phase")
    assert set(table["config_hash"]) == {c.config_hash() for c in changed.configs}
    assert (table["restarts"] == 2).all()
    assert len(list((tmp_path / "phase" / "configs").glob("*.json"))) == 8


def test_table_has_tidy_rows_and_provenance(tmp_path):
    result = run_experiment(PHASE, tmp_path, sweep=SMALL_PHASE, progress=False)
    assert [p.suffix for p in result.tables] == [".csv", ".parquet"]
    table = pd.read_csv(tmp_path / "phase.csv")
    pd.testing.assert_frame_equal(table, pd.read_parquet(tmp_path / "phase.parquet"))
    assert list(table.columns[:3]) == ["experiment", "config_hash", "seed"]
    for column in ("package_version", "git_commit", "timestamp", "d", "T", "k", "base_error"):
        assert column in table.columns
    assert len(table) == 8
    assert not table.duplicated(["config_hash", "seed"]).any()
    # Rows follow the sweep order (configs outermost), not completion order.
    expected = [(u.config.config_hash(), u.seeds[0]) for u in units_of(SMALL_PHASE)]
    assert list(zip(table["config_hash"], table["seed"])) == expected


@pytest.mark.parametrize("make", [lambda: LocalExecutor(2),
                                  lambda: DaskExecutor(2, processes=False)],
                         ids=["local-2-processes", "dask-localcluster"])
def test_same_seeds_same_table_whatever_the_executor(tmp_path, make):
    """Deterministic: sequential, a 2-process pool and a dask cluster write identical tables."""
    experiment = PHASE
    run_experiment(experiment, tmp_path / "seq", sweep=SMALL_PHASE, progress=False)
    with make() as executor:
        result = run_experiment(experiment, tmp_path / "par", sweep=SMALL_PHASE,
                                executor=executor, progress=False)
    assert result.n_computed == 8
    # Seeds, configs and every integer column agree exactly. Float columns agree to 1e-6: for
    # T = 2 the minima form a continuum (Theorem 4), so where a solver stops on it, and hence
    # ||A^ - A*||, moves with last-bit round-off of the BLAS calls, which the process layout
    # may change; once in a while that shows at the 1e-13 level.
    seq = drop_provenance(read_table(tmp_path / "seq", "phase"))
    par = drop_provenance(read_table(tmp_path / "par", "phase"))
    pd.testing.assert_frame_equal(seq.select_dtypes(exclude="float"), par.select_dtypes(exclude="float"),
                                  check_exact=True)
    pd.testing.assert_frame_equal(seq, par, check_exact=False, rtol=1e-6, atol=1e-12)


def test_batched_experiment_units_hold_all_seeds(tmp_path):
    vary = EXPERIMENTS["vary"]
    assert vary.seeds_per_unit is None
    units = units_of(vary.quick, vary.seeds_per_unit)
    assert len(units) == len(vary.quick.configs)
    assert all(u.seeds == vary.quick.seeds for u in units)
    assert units[0].key.endswith("-0_1_2")


def _bad_run(config, seeds):
    return [{"value": 1}]


def test_run_function_must_return_a_frame_with_seed(tmp_path):
    bad = Experiment("bad", "bad", "none", _bad_run, SMALL_PHASE, SMALL_PHASE)
    with pytest.raises(TypeError, match="seed") as info:
        run_experiment(bad, tmp_path, progress=False)
    assert "PhaseConfig" in "".join(info.value.__notes__)  # the failing run is named
    assert not list((tmp_path / "bad" / "runs").glob("*.csv"))


def test_atomic_write_leaves_no_temporary(tmp_path):
    path = tmp_path / "a" / "x.csv"
    atomic_write_text(path, "a,b\n1,2\n")
    atomic_write_text(path, "a,b\n3,4\n")
    assert path.read_text() == "a,b\n3,4\n"
    assert [p.name for p in path.parent.iterdir()] == ["x.csv"]


def test_make_executor_validates():
    with pytest.raises(ValueError, match="local, dask"):
        make_executor("threads", 2)
    with pytest.raises(ValueError, match="scheduler"):
        make_executor("local", 2, scheduler="tcp://localhost:8786")
    with pytest.raises(ValueError, match="jobs"):
        make_executor("local", 0)
