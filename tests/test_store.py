"""Tests of simulations/store.py: validated run files, table manifests, the lock, the folder."""

import dataclasses
import fcntl
import importlib.util
import json
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import lowrank_theory.simulations.store as store
import pandas as pd
import pytest
from lowrank_theory.figures.io import read_table
from lowrank_theory.simulations.configs import Sweep
from lowrank_theory.simulations.runner import drop_provenance, run_experiment, units_of
from lowrank_theory.simulations.store import (
    InvalidRunFile,
    OutputDirError,
    OutputLocked,
    RunFileWarning,
    atomic_write_text,
    check_output_dir,
    check_run,
    output_lock,
    remove_stale_temporaries,
    write_run,
    write_tables,
)
from runner_toys import SWEEP, TOY, expected_value

SMALL = dataclasses.replace(TOY, quick=Sweep(SWEEP.configs[:2], seeds=(0, 1)),
                            seeds_per_unit=None)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# Every way a run file can go bad. Each must be detected, warned about and recomputed.
CORRUPTIONS = {
    "truncated-half": _truncate,
    "ascii-garbage": lambda p: p.write_text("lorem,ipsum\ndolor,sit\namet,1\n" * 3),
    "binary": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "empty": lambda p: p.write_bytes(b""),
    "one-digit-changed": lambda p: p.write_bytes(p.read_bytes().replace(b"1", b"2", 1)),
    "data-deleted": lambda p: p.unlink(),
    "sidecar-deleted": lambda p: p.with_suffix(".json").unlink(),
    "sidecar-garbage": lambda p: p.with_suffix(".json").write_bytes(b"\x00\xff{"),
    "sidecar-truncated": lambda p: _truncate(p.with_suffix(".json")),
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS.values()), ids=list(CORRUPTIONS))
def test_a_corrupt_run_file_is_warned_about_and_recomputed(tmp_path, corrupt):
    first = run_experiment(SMALL, tmp_path, progress=False)
    before = drop_provenance(read_table(tmp_path, "toy"))
    key = units_of(SMALL.quick, SMALL.seeds_per_unit)[1].key
    corrupt(tmp_path / "toy" / "runs" / f"{key}.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_experiment(SMALL, tmp_path, progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, RunFileWarning)]
    assert any(f"{key}.csv" in m and "recomputing" in m for m in messages), messages
    assert result.invalid == (f"{key}.csv",)
    assert f"recomputed 1 invalid run file(s): {key}.csv" in result.summary()
    assert (first.n_computed, result.n_computed, result.n_skipped) == (2, 1, 1)
    pd.testing.assert_frame_equal(drop_provenance(read_table(tmp_path, "toy")), before)


def test_check_run_accepts_an_intact_file_and_names_the_defect_of_a_bad_one(tmp_path):
    path = tmp_path / "abc-0.csv"
    assert check_run(path) is None  # never run
    frame = pd.DataFrame({"seed": [0, 0], "config_hash": ["754797311399", "7e2014676525"],
                          "value": [0.1, float("nan")]})
    record = write_run(path, frame, {"git_commit": "x"})
    assert check_run(path) == record
    assert record.rows == 2 and record.code == {"git_commit": "x"}
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(InvalidRunFile, match="bytes where its sidecar records"):
        check_run(path)
    # The sidecar comes last: a data file without one is unfinished.
    path.with_suffix(".json").unlink()
    with pytest.raises(InvalidRunFile, match="no sidecar"):
        check_run(path)


@pytest.mark.parametrize("column", [["NA", "x"], [1, "a"], [[1], [2]]],
                         ids=["string-NA", "mixed-object", "lists"])
def test_rows_that_do_not_survive_csv_are_refused_before_writing(tmp_path, column):
    path = tmp_path / "k-0.csv"
    with pytest.raises(TypeError, match="do not read back from CSV"):
        write_run(path, pd.DataFrame({"seed": [0, 1], "x": column}), {})
    assert list(tmp_path.iterdir()) == []
    # Negative control: plain values pass.
    write_run(path, pd.DataFrame({"seed": [0, 1], "x": ["a", "b"], "ok": [True, False]}), {})


def test_files_take_the_permissions_of_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        run_experiment(SMALL, tmp_path, progress=False)
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    tables = {".parquet"} if importlib.util.find_spec("pyarrow") else set()
    assert {p.suffix for p in files} >= {".csv", ".json"} | tables
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o640}


def test_remove_stale_temporaries_spares_live_writers(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        names = {"live": f".x.csv.{live.pid}.ab12.tmp", "dead": f".x.csv.{dead}.cd34.tmp",
                 "mine": f".x.csv.{os.getpid()}.ef56.tmp", "old-style": ".x.csv.q1w2e3.tmp"}
        for name in names.values():
            (tmp_path / name).write_text("partial")
        removed = {p.name for p in remove_stale_temporaries(tmp_path)}
        assert removed == {names["dead"], names["mine"], names["old-style"]}
        assert [p.name for p in tmp_path.iterdir()] == [names["live"]]
    finally:
        live.kill()
        live.wait()


def test_atomic_write_cleans_up_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    atomic_write_text(path, "old")

    def fail(fd, data):
        raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(store, "_write_fully", fail)
    with pytest.raises(OSError, match="injected"):
        atomic_write_text(path, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert path.read_text() == "old"


# --------------------------------------------------------------------------- combined tables
def test_new_csv_never_lands_beside_an_old_parquet(tmp_path, monkeypatch):
    """When the new CSV is renamed into place, the old Parquet and manifest are already gone."""
    old = pd.DataFrame({"config_hash": ["aaa"], "v": [1.0]})
    write_tables(old, tmp_path / "t", "inputs-1")
    real = store.atomic_write_bytes
    seen = []

    def spy(path, data):
        if Path(path).suffix == ".csv":
            seen.append(sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")))
        real(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", spy)
    new = pd.DataFrame({"config_hash": ["754797311399"], "v": [2.0]})
    write_tables(new, tmp_path / "t", "inputs-2")
    assert seen == [["t.csv"]]
    assert read_table(tmp_path, "t")["config_hash"].tolist() == ["754797311399"]


def test_a_failed_table_write_leaves_no_stale_table(tmp_path, monkeypatch):
    """Parquet fails after the compute: neither the old CSV nor the old Parquet survives."""
    pytest.importorskip("pyarrow")
    write_tables(pd.DataFrame({"v": [1.0]}), tmp_path / "t", "inputs-1")

    def fail(*args, **kwargs):
        raise ValueError("ArrowInvalid (injected)")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail)
    with pytest.raises(ValueError, match="injected"):
        write_tables(pd.DataFrame({"v": [2.0]}), tmp_path / "t", "inputs-2")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="reproduce --only t"):
        read_table(tmp_path, "t")


def test_read_table_skips_a_table_that_differs_from_its_manifest(tmp_path):
    write_tables(pd.DataFrame({"config_hash": ["047076636478"], "v": [1.0]}), tmp_path / "t",
                 "inputs")
    if (tmp_path / "t.parquet").exists():  # a stale Parquet file beside the CSV
        pd.DataFrame({"config_hash": ["old"], "v": [0.0]}).to_parquet(tmp_path / "t.parquet")
        with pytest.warns(UserWarning, match="t.parquet does not match its manifest"):
            assert read_table(tmp_path, "t")["config_hash"].tolist() == ["047076636478"]
    (tmp_path / "t.csv").write_text("config_hash,v\nold,0.0\n")
    with pytest.raises(ValueError, match="matches its manifest"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_table(tmp_path, "t")


# --------------------------------------------------------------------------- output folder
def test_check_output_dir_creates_a_folder_and_refuses_files(tmp_path):
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputDirError, match=r"file exists and is not a folder"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(OutputDirError, match=r"cannot create output folder .*file/sub"):
        check_output_dir(tmp_path / "file" / "sub")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_check_output_dir_refuses_a_read_only_folder(tmp_path):
    with pytest.raises(OutputDirError, match="/proc/self is not writable"):
        check_output_dir("/proc/self")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputDirError, match="not writable"):
            check_output_dir(locked)


def test_output_lock_is_exclusive_reentrant_and_names_the_holder(tmp_path):
    # Another holder: an independent open file description of the lock file, with its pid.
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242\n")
    with pytest.raises(OutputLocked, match=rf"{tmp_path} is in use by process 4242"):
        with output_lock(tmp_path):
            pass  # pragma: no cover
    os.close(fd)
    with output_lock(tmp_path), output_lock(tmp_path):  # re-entrant in one process
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
    fd = os.open(tmp_path / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on exit
    os.close(fd)


def test_run_file_sidecar_records_shape_dtypes_and_code(tmp_path):
    run_experiment(SMALL, tmp_path, progress=False)
    unit = units_of(SMALL.quick, SMALL.seeds_per_unit)[0]
    meta = json.loads((tmp_path / "toy" / "runs" / f"{unit.key}.json").read_text())
    assert meta["rows"] == 2 and meta["file"] == f"{unit.key}.csv"
    assert meta["dtypes"]["config_hash"] in ("str", "object")
    assert meta["dtypes"]["value"] == "float64" and meta["dtypes"]["seed"] == "int64"
    assert set(meta["code"]) == {"package_version", "git_commit", "schema"}
    rows = pd.read_csv(tmp_path / "toy" / "runs" / f"{unit.key}.csv")
    assert rows["value"].tolist() == [expected_value(1, s, 0) for s in (0, 1)]
