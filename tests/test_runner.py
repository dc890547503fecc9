"""Tests of simulations/runner.py: resume after kills, integrity, determinism, options, workers."""

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
from lowrank_theory.figures.io import read_table
from lowrank_theory.simulations.configs import PhaseConfig, Sweep, VaryConfig
from lowrank_theory.simulations.experiments import EXPERIMENTS
from lowrank_theory.simulations.runner import (
    DaskExecutor,
    Experiment,
    LocalExecutor,
    OutputLocked,
    RunFileWarning,
    atomic_write_text,
    drop_provenance,
    make_executor,
    run_experiment,
    units_of,
)
from runner_toys import BIG, SLOW, SWEEP, TOY, expected_value, run_value

# A tiny real experiment: population LoRA-ML on a 2 x 2 grid, 2 seeds, one unit per seed
# (8 units, well under 1 s).
SMALL_PHASE = Sweep(tuple(PhaseConfig(d=5, T=T, k=k, restarts=1) for k in (1, 2) for T in (2, 3)),
                    seeds=(0, 1))
PHASE = dataclasses.replace(EXPERIMENTS["phase"], seeds_per_unit=1)

TESTS_DIR = Path(__file__).resolve().parent


def _child(script: str, **env: str) -> subprocess.Popen:
    """Start ``script`` in a fresh interpreter that can import the toys of ``runner_toys``."""
    prelude = f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r})\n"
    return subprocess.Popen([sys.executable, "-c", prelude + textwrap.dedent(script)],
                            env={**os.environ, **env})


def _wait_for(condition, child: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert child.poll() is None, f"the child ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_sigkill_midway_then_resume_skips_finished_runs(tmp_path):
    """Kill a sweep with SIGKILL after some runs finished; the rerun recomputes only the rest."""
    out = tmp_path / "out"
    child = _child(f"""
        from lowrank_theory.simulations.runner import run_experiment
        from runner_toys import SLOW
        run_experiment(SLOW, {str(out)!r}, progress=False)
    """)
    runs = out / "slow" / "runs"
    _wait_for(lambda: len(list(runs.glob("*.json"))) >= 3, child, "three runs finished")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    finished = {p.stem for p in runs.glob("*.json")}  # a run is finished once its sidecar is in
    assert 3 <= len(finished) < 12
    assert not (out / "slow.csv").exists()  # the combined table is written only at the end
    for stem in finished:  # every finished run file is complete
        assert len(pd.read_csv(runs / f"{stem}.csv")) == 1

    # A data file whose sidecar the kill prevented is recomputed, with a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunFileWarning)
        result = run_experiment(SLOW, out, progress=False)
    assert result.n_skipped == len(finished)
    assert result.n_computed == 12 - len(finished)
    assert "skipped" in result.summary()
    assert not list(runs.glob(".*.tmp"))
    # The same rows without the wait, computed in one go.
    fresh = run_experiment(dataclasses.replace(SLOW, run=run_value), tmp_path / "fresh",
                           progress=False)
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
    with pytest.raises(ValueError, match="not of the form tcp://host:port"):
        make_executor("dask", 1, scheduler="not an address")


@pytest.mark.parametrize(("address", "normalised"), [
    ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"), ("10.0.0.5:8786", "tcp://10.0.0.5:8786"),
    ("tls://host.example:1", "tls://host.example:1"), ("[::1]:8786", "tcp://[::1]:8786"),
    ("not an address", None), ("", None), ("tcp://host", None), ("host:0", None),
    ("host:65536", None), ("http://host:80", None), ("tcp://host:80/path", None),
    ("tcp://:8786", None), ("tcp://user@host:1", None), ("x" * 10_000, None),
])
def test_scheduler_addresses_are_checked_for_their_form(address, normalised):
    from lowrank_theory.simulations.executors import check_scheduler_address

    if normalised is None:
        with pytest.raises(ValueError, match="scheduler address") as info:
            check_scheduler_address(address)
        assert len(str(info.value)) < 300
    else:
        assert check_scheduler_address(address) == normalised


def test_an_unreachable_scheduler_is_named_within_the_timeout():
    """Nothing listens on the port: SchedulerUnreachable after the timeout, not dask's 30 s."""
    pytest.importorskip("distributed")
    import socket

    from lowrank_theory.simulations.executors import SchedulerUnreachable

    with socket.socket() as free:  # a port nobody listens on once it is closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(SchedulerUnreachable, match=rf"tcp://127.0.0.1:{port} within 1 s"):
        with DaskExecutor(1, f"127.0.0.1:{port}", timeout=1):
            pass  # pragma: no cover
    assert time.perf_counter() - start < 10


# --------------------------------------------------------------------------- seeds
#: The largest seed (``configs.MAX_SEED``): the tables' seed column is int64.
MAX_SEED = 2**63 - 1


def test_a_hundred_seeds_in_one_unit_get_a_short_name(tmp_path):
    """A unit of 100 seeds (its name would spell 290 characters: OSError 36 after computing)
    is named by a digest; the table holds every seed, and the rerun finds the unit."""
    batched = dataclasses.replace(TOY, seeds_per_unit=None)
    sweep = Sweep((PhaseConfig(d=4, T=1, k=1),), seeds=tuple(range(100)))
    run_experiment(batched, tmp_path, sweep=sweep, progress=False)
    (name,) = [p.name for p in (tmp_path / "toy" / "runs").glob("*.csv")]
    assert len(name) < 64 and "100seeds" in name
    assert read_table(tmp_path, "toy")["seed"].tolist() == list(range(100))
    assert run_experiment(batched, tmp_path, sweep=sweep, progress=False).n_skipped == 1
    long = Sweep((PhaseConfig(d=4, T=1, k=1),), seeds=tuple(MAX_SEED - i for i in range(20)))
    run_experiment(batched, tmp_path / "big", sweep=long, progress=False)


def test_the_largest_seed_reads_back_exactly(tmp_path):
    """A seed of 2**63 - 1 runs and reads back as itself, in an int64 column; one past it is
    refused when the sweep is built."""
    sweep = Sweep((PhaseConfig(d=4, T=1, k=1),), seeds=(0, MAX_SEED))
    run_experiment(TOY, tmp_path, sweep=sweep, progress=False)
    table = read_table(tmp_path, "toy")
    assert table["seed"].tolist() == [0, MAX_SEED] and table["seed"].dtype == "int64"
    assert run_experiment(TOY, tmp_path, sweep=sweep, progress=False).n_skipped == 2
    with pytest.raises(ValueError, match=r"seeds\[1\] must be at most 2\*\*63 - 1"):
        Sweep((PhaseConfig(),), seeds=(0, MAX_SEED + 1))


# --------------------------------------------------------------------------- identifiers
def _vary_config_with_hash(pattern: str, start: int = 1) -> VaryConfig:
    """A tiny VaryConfig (only ``rounds`` searched) whose hash matches ``pattern``."""
    for rounds in range(start, 200_000):
        config = VaryConfig(d=2, T=2, N=2, n=2, k=1, rounds=rounds, ft_steps=1)
        if re.fullmatch(pattern, config.config_hash()):
            return config
    raise AssertionError(f"no hash matches {pattern}")  # pragma: no cover


@pytest.mark.parametrize("patterns", [
    (r"0\d{11}",),                      # digits with a leading zero: 047076636478
    (r"\d+e\d+",),                      # float-shaped: 7e2014676525 would read as inf
    (r"\d{12}", r"[0-9a-f]*[a-f][0-9a-f]*"),  # a digits hash beside an ordinary one
], ids=["leading-zero", "float-shaped", "mixed"])
def test_config_hashes_that_look_like_numbers_stay_strings(tmp_path, patterns):
    """Key columns read back as the exact strings that name the run files, in every table."""
    configs = tuple(_vary_config_with_hash(p) for p in patterns)
    toy = dataclasses.replace(TOY, quick=Sweep(configs, seeds=(0, 1)))
    hashes = [c.config_hash() for c in configs for _ in (0, 1)]
    for attempt in range(2):  # the first run computes, the rerun reads the run files back
        result = run_experiment(toy, tmp_path, progress=False)
        assert result.n_computed == (len(hashes) if attempt == 0 else 0)
        assert pd.read_parquet(tmp_path / "toy.parquet")["config_hash"].tolist() == hashes
        # The CSV alone (as without pyarrow); the rerun then rebuilds the missing Parquet.
        (tmp_path / "toy.parquet").unlink()
        assert read_table(tmp_path, "toy")["config_hash"].tolist() == hashes
    assert read_table(tmp_path, "toy")["value"].tolist() == [
        expected_value(2, s, 0) for _ in configs for s in (0, 1)]


# --------------------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("fail", ["data", "sidecar"])
def test_failure_between_write_and_rename_recomputes_exactly_that_unit(tmp_path, monkeypatch,
                                                                      fail):
    """A write that dies before its rename leaves no temporary, no half file, no false resume."""
    toy = dataclasses.replace(TOY, quick=Sweep(SWEEP.configs[:2], seeds=(0, 1)))
    last = units_of(toy.quick)[-1].key
    target = f"{last}.csv" if fail == "data" else f"{last}.json"
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == target:
            raise OSError(28, "No space left on device (injected)")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="injected"):
        run_experiment(toy, tmp_path, progress=False)
    monkeypatch.undo()
    runs = tmp_path / "toy" / "runs"
    assert not list(runs.glob(".*.tmp"))
    assert (runs / f"{last}.csv").exists() == (fail == "sidecar")
    assert not (runs / f"{last}.json").exists()
    assert not (tmp_path / "toy.csv").exists()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_experiment(toy, tmp_path, progress=False)
    assert (result.n_computed, result.n_skipped) == (1, 3)
    messages = [str(w.message) for w in caught if issubclass(w.category, RunFileWarning)]
    assert ([m for m in messages if f"{last}.csv" in m] != []) == (fail == "sidecar")
    fresh = run_experiment(toy, tmp_path / "fresh", progress=False)
    pd.testing.assert_frame_equal(drop_provenance(read_table(tmp_path, "toy")),
                                  drop_provenance(read_table(tmp_path / "fresh", "toy")))
    assert fresh.n_computed == 4


def test_sigkill_during_a_write_recomputes_exactly_that_unit(tmp_path):
    """SIGKILL while the third run file (0.7 MB) is half written: the rerun redoes that unit."""
    big = dataclasses.replace(BIG, quick=Sweep(SWEEP.configs[:3], seeds=(0,)))
    out = tmp_path / "out"
    # The child writes large files in two halves, pausing after the first half of the third.
    child = _child(f"""
        import os, time
        import lowrank_theory.simulations.outdir as outdir
        from lowrank_theory.simulations.runner import run_experiment
        from runner_toys import BIG, SWEEP, Sweep
        import dataclasses
        real, large = outdir._write_fully, []

        def write(fd, data):
            if len(data) > 100_000:
                large.append(fd)
                real(fd, data[: len(data) // 2])
                os.fsync(fd)
                if len(large) == 3:
                    time.sleep(60)
                data = data[len(data) // 2:]
            real(fd, data)

        outdir._write_fully = write
        big = dataclasses.replace(BIG, quick=Sweep(SWEEP.configs[:3], seeds=(0,)))
        run_experiment(big, {str(out)!r}, progress=False)
    """)
    runs = out / "big" / "runs"

    def half_written():
        return len(list(runs.glob("*.json"))) == 2 and any(
            p.stat().st_size > 100_000 for p in runs.glob(".*.tmp"))

    _wait_for(half_written, child, "the third file was half written")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert len(list(runs.glob("*.csv"))) == 2  # the half file never got its final name

    result = run_experiment(big, out, progress=False)
    assert (result.n_computed, result.n_skipped) == (1, 2)
    assert not list(runs.glob(".*.tmp"))  # the dead writer's temporary is cleaned up
    table = read_table(out, "big")
    assert len(table) == 3 * 20_000
    assert table["value"].tolist() == [expected_value(T, 0, r) for T in (1, 2, 3)
                                       for r in range(20_000)]


# --------------------------------------------------------------------------- processes
def _gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie waiting for its new parent counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_of_the_parent_ends_its_workers(tmp_path):
    """``--jobs 2``: SIGKILL the sweep while both workers are amid a minute-long unit."""
    markers = tmp_path / "markers"
    markers.mkdir()
    child = _child(f"""
        from lowrank_theory.simulations.runner import LocalExecutor, run_experiment
        from runner_toys import SLEEPY
        with LocalExecutor(2) as executor:
            run_experiment(SLEEPY, {str(tmp_path / 'out')!r}, executor=executor, progress=False)
    """, RUNNER_TOY_MARKERS=str(markers))
    workers = []
    try:
        _wait_for(lambda: len(list(markers.iterdir())) == 2, child, "both workers started")
        workers = [int(p.name.split("-")[1]) for p in markers.iterdir()]
        assert child.pid not in workers
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 5
        while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in workers if not _gone(pid)] == []
    finally:
        for pid in [child.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_the_watchdog_alone_ends_an_orphaned_worker(tmp_path):
    """Without PR_SET_PDEATHSIG (systems other than Linux) the watchdog thread does the job."""
    worker = textwrap.dedent("""
        import os, sys, time
        from lowrank_theory.simulations.executors import _tie_to_parent
        sys.platform = "other-posix"  # skip the Linux-only signal
        _tie_to_parent(os.getppid())
        print(os.getpid(), flush=True)
        time.sleep(60)
    """)
    parent = _child(f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {worker!r}], stdout=open({str(tmp_path / 'pid')!r}, "w"))
        time.sleep(60)
    """)
    pid_file = tmp_path / "pid"
    _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), parent,
              "the worker started")
    pid = int(pid_file.read_text())
    try:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_second_sweep_on_a_busy_folder_is_refused_and_the_first_completes(tmp_path):
    """While a sweep writes into a folder, another is refused at once (naming the holder)."""
    out = tmp_path / "out"
    child = _child(f"""
        from lowrank_theory.simulations.runner import run_experiment
        from runner_toys import SLOW
        run_experiment(SLOW, {str(out)!r}, progress=False)
    """)
    _wait_for(lambda: len(list((out / "slow" / "runs").glob("*.json"))) >= 1, child,
              "the first sweep started")
    with pytest.raises(OutputLocked, match=rf"{re.escape(str(out))}.*process {child.pid}"):
        run_experiment(SLOW, out, progress=False)
    assert child.wait(timeout=60) == 0
    assert len(read_table(out, "slow")) == 12
    assert run_experiment(SLOW, out, progress=False).n_skipped == 12  # the lock was released


# --------------------------------------------------------------------------- reruns
def test_rerun_with_nothing_to_do_rewrites_nothing(tmp_path, monkeypatch):
    """No unit to compute: the tables are neither rebuilt nor rewritten."""
    import lowrank_theory.simulations.runner as runner

    run_experiment(TOY, tmp_path, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("toy.*")}
    assert set(before) == {"toy.csv", "toy.parquet", "toy.json"}

    def no_write(*args, **kwargs):
        raise AssertionError("tables rewritten")

    monkeypatch.setattr(runner, "write_tables", no_write)
    assert run_experiment(TOY, tmp_path, progress=False).n_computed == 0
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("toy.*")} == before
    # Negative control: a table that no longer matches its manifest is rebuilt.
    (tmp_path / "toy.csv").write_text("garbage\n")
    with pytest.raises(AssertionError, match="tables rewritten"):
        run_experiment(TOY, tmp_path, progress=False)


def test_resumed_units_of_other_code_are_reported(tmp_path, monkeypatch):
    """Units resumed from another commit are kept, but warned about and listed."""
    import lowrank_theory.simulations.runner as runner

    toy = dataclasses.replace(TOY, quick=Sweep(SWEEP.configs[:2], seeds=(0,)))
    run_experiment(toy, tmp_path, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # negative control: the same code resumes silently
        same = run_experiment(toy, tmp_path, progress=False)
    assert same.other_code == () and "other code" not in same.summary()

    monkeypatch.setattr(runner, "git_commit", lambda: "f" * 40)
    with pytest.warns(RunFileWarning, match="2 resumed unit"):
        result = run_experiment(toy, tmp_path, progress=False)
    assert (result.n_computed, result.n_skipped) == (0, 2)
    assert [k.split(" ")[0] for k in result.other_code] == [u.key for u in units_of(toy.quick)]
    assert "git_commit" in result.other_code[0] and "ffffffffffff" in result.other_code[0]
    line = result.summary().splitlines()[-1]
    assert "resumed 2 unit(s) computed by other code" in line
    assert all(u.key in line for u in units_of(toy.quick))


# --------------------------------------------------------------------------- options
@pytest.mark.parametrize("make", [lambda: LocalExecutor(2),
                                  lambda: DaskExecutor(1, processes=False)],
                         ids=["local-2-processes", "dask-localcluster"])
def test_options_reach_the_run_function_and_stay_out_of_the_hash(tmp_path, make):
    """``options`` are passed as keywords, in this process and through the executors."""
    toy = dataclasses.replace(TOY, quick=Sweep(SWEEP.configs[:2], seeds=(0, 1)))
    run_experiment(toy, tmp_path / "seq", options={"rows": 2, "scale": 3.0}, progress=False)
    with make() as executor:
        run_experiment(toy, tmp_path / "par", options={"rows": 2, "scale": 3.0},
                       executor=executor, progress=False)
    expected = [expected_value(T, s, r, 3.0) for T in (1, 2) for s in (0, 1) for r in (0, 1)]
    for folder in ("seq", "par"):
        assert read_table(tmp_path / folder, "toy")["value"].tolist() == expected
    # Execution options do not name runs: other option values resume the same files.
    again = run_experiment(toy, tmp_path / "seq", options={"scale": 5.0}, progress=False)
    assert again.n_computed == 0


def test_an_unknown_option_fails_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"\['device'\].*toy.*rows, scale"):
        run_experiment(TOY, out, options={"device": "cpu", "rows": 2}, progress=False)
    with pytest.raises(ValueError, match="accepts: none"):
        run_experiment(SLOW, out, options={"rows": 2}, progress=False)
    with LocalExecutor(1) as executor, pytest.raises(TypeError, match="'scale' must be picklable"):
        run_experiment(TOY, out, options={"scale": lambda: 1.0}, executor=executor,
                       progress=False)
    assert not out.exists()


def test_experiment_options_must_be_keyword_names():
    with pytest.raises(TypeError, match="options"):
        dataclasses.replace(TOY, options=["rows"])
    with pytest.raises(ValueError, match="seeds"):
        dataclasses.replace(TOY, options=("seeds",))


def test_a_config_of_another_experiment_is_refused_before_writing(tmp_path):
    """The vary experiment given a PhaseConfig raises a TypeError naming both types, and
    writes nothing (it used to write the config's JSON, then fail with an AttributeError)."""
    out = tmp_path / "out"
    with pytest.raises(TypeError, match=r"configs\[1\] is a PhaseConfig.*'vary' runs VaryConfig"):
        run_experiment(EXPERIMENTS["vary"], out, sweep=Sweep((VaryConfig(), PhaseConfig()), (0,)),
                       progress=False)
    assert not out.exists()
    assert EXPERIMENTS["vary"].config_type is VaryConfig
    assert {e.config_type.__name__ for e in EXPERIMENTS.values()} == {
        "VaryConfig", "PhaseConfig", "RateConfig", "LandscapeConfig", "SchemesConfig",
        "AtlasConfig"}


def test_an_experiment_knows_its_config_type():
    """The type defaults to the quick sweep's; a sweep of another type is refused."""
    assert SLOW.config_type is PhaseConfig
    with pytest.raises(TypeError, match="full.configs"):
        Experiment("mixed", "m", "none", run_value, SWEEP, Sweep((VaryConfig(),), (0,)))
    with pytest.raises(TypeError, match="config_type"):
        Experiment("bad", "b", "none", run_value, SWEEP, SWEEP, config_type=int)
