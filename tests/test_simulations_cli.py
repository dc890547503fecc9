"""Tests of simulations/cli.py: ``lowrank-theory reproduce`` arguments, output and exit codes."""

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
