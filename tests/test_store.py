"""Tests of simulations/store.py and outdir.py: validated run files, table manifests, the lock,
the folder."""

import dataclasses
import errno
import fcntl
import functools
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import lowrank_theory.simulations.outdir as outdir
import lowrank_theory.simulations.runner as runner
import lowrank_theory.simulations.store as store
import pandas as pd
import pytest
from lowrank_theory.figures.io import read_table
from lowrank_theory.simulations.configs import Sweep
from lowrank_theory.simulations.outdir import (
    OutputDirError,
    OutputLocked,
    atomic_write_text,
    check_output_dir,
    output_lock,
    remove_stale_temporaries,
)
from lowrank_theory.simulations.runner import drop_provenance, run_experiment, units_of
from lowrank_theory.simulations.store import (
    InvalidRunFile,
    RunFileWarning,
    check_run,
    write_run,
    write_tables,
)
from runner_toys import (
    SWEEP,
    TOY,
    expected_value,
    lock_held_by_another_process,
    run_value,
)

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


def test_remove_stale_temporaries_spares_live_writers_and_other_programs(tmp_path):
    """Only this project's temporaries of dead processes (or of this one) go; a live writer's
    temporary stays, and so does every other program's file, however it is named."""
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        ours = {"live": f".lowrank-theory.x.csv.{live.pid}.ab12cd34.tmp",
                "dead": f".lowrank-theory.x.csv.{dead}.cd34ef56.tmp",
                "mine": f".lowrank-theory.x.csv.{os.getpid()}.ef56ab12.tmp"}
        others = [".notes.tmp", ".report.12345678.tmp", f".x.csv.{dead}.cd34ef56.tmp",
                  ".x.csv.q1w2e3.tmp", f".lowrank-theory.x.csv.{dead}.not-hex.tmp"]
        for name in [*ours.values(), *others]:
            (tmp_path / name).write_text("partial")
        (tmp_path / f".lowrank-theory.d.{dead}.abcdef12.tmp").mkdir()  # not a file: kept
        removed = {p.name for p in remove_stale_temporaries(tmp_path)}
        assert removed == {ours["dead"], ours["mine"]}
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [ours["live"], *others, f".lowrank-theory.d.{dead}.abcdef12.tmp"])
    finally:
        live.kill()
        live.wait()


def test_atomic_write_cleans_up_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    atomic_write_text(path, "old")

    def fail(fd, data):
        raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(outdir, "_write_fully", fail)
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


def test_output_lock_is_exclusive_reentrant_and_names_the_real_holder(tmp_path):
    """The lock names the process that holds it, even when its file says another pid."""
    lock = tmp_path / outdir.LOCK_NAME
    with lock_held_by_another_process(lock, written="4242\n") as holder:
        with pytest.raises(OutputLocked, match=rf"{tmp_path} is in use by process {holder.pid}"):
            with output_lock(tmp_path):
                pass  # pragma: no cover
    with output_lock(tmp_path), output_lock(tmp_path):  # re-entrant in one process
        assert lock.read_text() == f"{os.getpid()}\n"
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on exit
    os.close(fd)


def test_output_lock_says_when_it_cannot_tell_the_holder(tmp_path, monkeypatch):
    """Without a lock table, a pid in the file that is not a live process is not named."""
    monkeypatch.setattr(outdir, "_lock_table_holder", lambda fd: None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    lock = tmp_path / outdir.LOCK_NAME
    with lock_held_by_another_process(lock, written=f"{dead}\n"):
        with pytest.raises(OutputLocked, match="in use by another process .which one cannot be "
                                               "told here."):
            with output_lock(tmp_path):
                pass  # pragma: no cover
    with lock_held_by_another_process(lock, written=f"{os.getpid()}\n"):
        with pytest.raises(OutputLocked, match=f"process {os.getpid()} .as its lock file says"):
            with output_lock(tmp_path):
                pass  # pragma: no cover


def test_other_programs_files_in_out_are_left_alone(tmp_path):
    """A sweep touches neither another program's .lock nor its .tmp files."""
    others = {".lock": "another program's lock\n", ".notes.tmp": "notes",
              ".report.12345678.tmp": "report"}
    for name, text in others.items():
        (tmp_path / name).write_text(text)
    run_experiment(SMALL, tmp_path, progress=False)
    run_experiment(SMALL, tmp_path, progress=False)
    for name, text in others.items():
        assert (tmp_path / name).read_text() == text
    assert (tmp_path / outdir.LOCK_NAME).is_file()


@pytest.mark.parametrize("kind", ["symlink", "folder"])
def test_a_lock_that_is_a_link_or_a_folder_is_refused_and_nothing_followed(tmp_path, kind):
    """A symlink at the lock's name is not followed (its target keeps its bytes); a folder
    there is named. Both are OutputDirError, before anything else is written."""
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    out = tmp_path / "out"
    out.mkdir()
    if kind == "symlink":
        (out / outdir.LOCK_NAME).symlink_to(target)
    else:
        (out / outdir.LOCK_NAME).mkdir()
    with pytest.raises(OutputDirError, match=rf"lock file .*{outdir.LOCK_NAME} is a "
                                             f"{'symbolic link' if kind == 'symlink' else 'folder'}"):
        run_experiment(SMALL, out, progress=False)
    assert target.read_text() == "keep me\n"
    assert sorted(p.name for p in out.iterdir()) == [outdir.LOCK_NAME]


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


# --------------------------------------------------------------------------- run-file identity
def _units_and_runs(out):
    units = units_of(SMALL.quick, SMALL.seeds_per_unit)
    runs = out / "toy" / "runs"
    return units, [runs / f"{u.key}.csv" for u in units]


def _sweep_warnings(out):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_experiment(SMALL, out, progress=False)
    return result, [str(w.message) for w in caught if issubclass(w.category, RunFileWarning)]


def test_a_unit_copied_over_another_units_name_is_recomputed(tmp_path):
    """Run file and sidecar of unit 0 copied over unit 1's names: the sidecar names another
    file, so unit 1 is recomputed (with a warning) and the table holds each config once."""
    run_experiment(SMALL, tmp_path, progress=False)
    before = drop_provenance(read_table(tmp_path, "toy"))
    (first, second), (src, dst) = _units_and_runs(tmp_path)
    for suffix in (".csv", ".json"):
        dst.with_suffix(suffix).write_bytes(src.with_suffix(suffix).read_bytes())
    result, messages = _sweep_warnings(tmp_path)
    assert result.invalid == (dst.name,) and result.n_computed == 1
    assert any(dst.name in m and "copied from another unit" in m for m in messages), messages
    table = drop_provenance(read_table(tmp_path, "toy"))
    assert table["config_hash"].tolist() == [first.config.config_hash()] * 2 + [
        second.config.config_hash()] * 2
    pd.testing.assert_frame_equal(table, before)


@pytest.mark.parametrize("forge", ["sidecar-renamed", "sidecar-unit-only"])
def test_a_sidecar_must_name_its_own_unit(tmp_path, forge):
    """Even with the file name in the copied sidecar corrected, the unit it records (config
    hash, seeds) or the rows' own config hash give the copy away."""
    run_experiment(SMALL, tmp_path, progress=False)
    (_, _), (src, dst) = _units_and_runs(tmp_path)
    dst.write_bytes(src.read_bytes())
    meta = json.loads(src.with_suffix(".json").read_text())
    meta["file"] = dst.name
    if forge == "sidecar-unit-only":
        meta.pop("unit", None)  # an older sidecar records no unit: the rows still tell
    dst.with_suffix(".json").write_text(json.dumps(meta))
    result, messages = _sweep_warnings(tmp_path)
    assert result.invalid == (dst.name,)
    assert any("copied from another unit" in m for m in messages), messages


def test_check_run_compares_the_unit_it_is_asked_for(tmp_path):
    path = tmp_path / "abc-0_1.csv"
    frame = pd.DataFrame({"config_hash": ["abc"] * 2, "seed": [0, 1], "v": [0.5, 1.5]})
    unit = {"config_hash": "abc", "seed": [0, 1]}
    record = write_run(path, frame, {}, unit)
    assert check_run(path, unit) == record == check_run(path)
    assert json.loads(path.with_suffix(".json").read_text())["unit"] == unit
    with pytest.raises(InvalidRunFile, match="belongs to unit"):
        check_run(path, {"config_hash": "abd", "seed": [0, 1]})
    with pytest.raises(InvalidRunFile, match="belongs to unit"):
        check_run(path, {"config_hash": "abc", "seed": [0, 2]})


def _edit_sidecar(path, **changes):
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    for key, value in changes.items():
        if key == "dtype":
            meta["dtypes"].update(value)
        else:
            meta[key] = value
    side.write_text(json.dumps(meta))


@pytest.mark.parametrize(("changes", "message"), [
    ({"dtype": {"value": "float32"}}, "records column 'value' as float32"),
    ({"dtype": {"seed": "float64"}}, "records column 'seed' as float64"),
    ({"dtype": {"value": "int64"}}, "does not parse with the dtypes"),
    ({"dtype": {"row": "bool"}}, "does not parse with the dtypes|records column 'row' as bool"),
    ({"rows": 3}, "holds 2 rows"),
    ({"rows": 0}, "holds 2 rows"),
], ids=["float32", "int-as-float", "float-as-int", "int-as-bool", "rows-3", "rows-0"])
def test_a_sidecar_inconsistent_with_its_file_means_recompute(tmp_path, changes, message):
    """The SHA-256 matches, but the recorded dtypes or row count do not describe the file: the
    unit is recomputed with a warning (never read with float32, never an exception)."""
    values = [expected_value(1, s, 0) + 0.1 for s in (0, 1)]  # not exact in float32
    small = dataclasses.replace(SMALL, run=functools.partial(_offset_values, offset=0.1))
    run_experiment(small, tmp_path, progress=False)
    (_, _), (path, _) = _units_and_runs(tmp_path)
    _edit_sidecar(path, **changes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_experiment(small, tmp_path, progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, RunFileWarning)]
    assert result.invalid == (path.name,), messages
    assert any(re.search(message, m) for m in messages), messages
    table = read_table(tmp_path, "toy")
    assert table["value"].dtype == "float64"
    assert table["value"].tolist()[:2] == values


def _offset_values(config, seeds, offset):
    frame = run_value(config, seeds)
    frame["value"] += offset
    return frame


# --------------------------------------------------------------------------- config records
@pytest.mark.parametrize("content", ["garbage", "another-config", "empty"])
def test_a_config_record_that_is_not_its_configs_is_rewritten(tmp_path, content):
    run_experiment(SMALL, tmp_path, progress=False)
    configs = tmp_path / "toy" / "configs"
    first, second = (configs / f"{c.config_hash()}.json" for c in SMALL.quick.configs)
    good = first.read_text()
    first.write_text({"garbage": "{not json", "empty": "",
                      "another-config": second.read_text()}[content])
    with pytest.warns(RunFileWarning, match=f"config record {re.escape(str(first))} did not hold"):
        run_experiment(SMALL, tmp_path, progress=False)
    assert first.read_text() == good
    record = json.loads(good)
    config = type(SMALL.quick.configs[0])(**record["config"])
    assert f"{config.config_hash()}.json" == first.name  # it hashes to its name
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunFileWarning)  # an intact record: no warning
        run_experiment(SMALL, tmp_path, progress=False)


# --------------------------------------------------------------------------- odd layouts
@pytest.mark.parametrize("where", ["experiment", "runs", "configs", "run-file", "sidecar",
                                   "config-record", "table", "manifest"])
def test_a_folder_or_file_of_the_wrong_kind_is_named(tmp_path, monkeypatch, where):
    """A file where the runner keeps a folder, or a folder where it keeps a file: an
    OutputDirError naming the path, before any unit is computed, and nothing deleted."""
    run_experiment(SMALL, tmp_path, progress=False)
    (_, _), (run_file, other) = _units_and_runs(tmp_path)
    other.with_suffix(".json").unlink()  # leaves a unit to compute
    config = tmp_path / "toy" / "configs" / f"{SMALL.quick.configs[0].config_hash()}.json"
    blocker = {"experiment": tmp_path / "toy", "runs": tmp_path / "toy" / "runs",
               "configs": tmp_path / "toy" / "configs", "run-file": run_file,
               "sidecar": run_file.with_suffix(".json"), "config-record": config,
               "table": tmp_path / "toy.csv", "manifest": tmp_path / "toy.json"}[where]
    if blocker.is_dir():
        shutil.rmtree(blocker)
        blocker.write_text("a file of the user's")
    else:
        blocker.unlink()
        blocker.mkdir()
        (blocker / "keep.txt").write_text("the user's")
    computed = []
    monkeypatch.setattr(runner, "write_run", lambda *a: computed.append(a))
    with pytest.raises(OutputDirError, match=re.escape(str(blocker))):
        run_experiment(SMALL, tmp_path, progress=False)
    assert computed == []
    assert (blocker / "keep.txt").exists() if blocker.is_dir() else (
        blocker.read_text() == "a file of the user's")


def test_a_manifest_whose_files_is_a_list_is_rebuilt(tmp_path):
    run_experiment(SMALL, tmp_path, progress=False)
    manifest = tmp_path / "toy.json"
    meta = json.loads(manifest.read_text())
    meta["files"] = list(meta["files"])
    manifest.write_text(json.dumps(meta))
    run_experiment(SMALL, tmp_path, progress=False)
    assert isinstance(json.loads(manifest.read_text())["files"], dict)


# --------------------------------------------------------------------------- full disk
def test_a_failed_write_names_the_file_not_the_temporary(tmp_path, monkeypatch):
    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outdir, "_write_fully", full)
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "x.json", "data")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "x.json")
    assert list(tmp_path.iterdir()) == []
