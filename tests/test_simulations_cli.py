"""Tests of simulations/cli.py: ``lowrank-theory reproduce`` arguments, output and exit codes."""

import os
import subprocess
import sys

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
    assert captured.err == ""  # no progress bar when stderr is not a terminal
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
    import simulations.runner as runner

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
    fcntl = pytest.importorskip("fcntl")
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"31337\n")
        assert main(["reproduce", "--only", "rate", "--out", str(tmp_path)]) == 2
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert f"{tmp_path} is in use by process 31337" in err


def test_rerun_with_nothing_to_do_draws_no_figure(tmp_path, capsys, monkeypatch):
    """A rerun that computes nothing draws nothing (nor rewrites a table)."""
    import figures.make

    out = tmp_path / "results"
    argv = ["reproduce", "--only", "rate", "--out", str(out)]
    assert main(argv) == 0
    png = (out / "figures" / "adaptation_rate.png").read_bytes()
    stamp = (out / "rate.csv").stat().st_mtime_ns
    real_save, drawn = figures.make.save_figure, []

    def save(fig, directory, name, *args, **kwargs):
        drawn.append(name)
        return real_save(fig, directory, name, *args, **kwargs)

    monkeypatch.setattr(figures.make, "save_figure", save)
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
