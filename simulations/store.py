"""Files of a sweep on disk: self-checking run files and table manifests.

Files are written atomically into the output folder (:mod:`lowrank_theory.simulations.outdir`,
which also holds the folder's lock).

A run file ``<key>.csv`` counts as finished only beside its sidecar ``<key>.json``, written
after the data file is in place. The sidecar records the data file's name, size and SHA-256,
its rows and its columns with their dtypes, the unit it belongs to (experiment, config hash,
seeds) and the code that computed it. :func:`check_run` accepts a run file only when all of
these agree with the file and with the unit asked for: a run file without a sidecar, whose
bytes differ from what its sidecar records, copied from another unit, or whose recorded rows
or dtypes do not match what it parses to, is recomputed. The rows are read back with the
recorded dtypes, so a string of digits (a config hash such as ``"754797311399"``) stays a
string.

A combined table ``<stem>.csv`` (and ``<stem>.parquet`` when pyarrow is installed) is described
by its manifest ``<stem>.json``: the tables' SHA-256, dtypes, and a digest of the run files it
was built from. The old manifest and Parquet file are removed before the new CSV is written and
the manifest is written last, so a new CSV never sits beside a stale Parquet file, and a failed
write leaves neither table.
"""


from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pandas as pd
from lowrank_theory.simulations.outdir import OutputDirError, atomic_write_bytes, atomic_write_text

#: Version of the sidecar and manifest formats; files of another version are redone.
FORMAT = 1
#: Dtypes a string column may be recorded with (pandas 3 writes ``str``, older ones ``object``).
STRING_DTYPES: tuple[str, ...] = ("str", "object", "string")

__all__ = [
    "FORMAT", "STRING_DTYPES", "InvalidRunFile", "RunFileWarning", "RunRecord", "check_run",
    "inputs_digest", "read_csv_exact", "read_run", "refuse_non_files", "sha256_hex",
    "sidecar_path", "tables_current", "warn_run_file", "write_run", "write_tables",
]


class InvalidRunFile(ValueError):
    """A run file is incomplete, corrupt, or does not match its sidecar."""


class RunFileWarning(UserWarning):
    """A run file failed validation and is recomputed, or was computed by other code."""


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- run files
@dataclass(frozen=True)
class RunRecord:
    """A validated run file: its path, digest, shape, dtypes and the code that wrote it."""

    path: Path
    sha256: str
    rows: int
    dtypes: dict[str, str]
    code: dict[str, Any]


def sidecar_path(path: Path) -> Path:
    """Return the sidecar of the run file ``path`` (same stem, ``.json``)."""
    return path.with_suffix(".json")


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {str(column): str(dtype) for column, dtype in frame.dtypes.items()}


def _pandas_parses_floats_exactly() -> bool:
    # Before pandas 3.1 the default float parser could miss the value repr wrote by one ulp
    # (seen with pandas 3.0.6); 3.1 parses exactly and deprecates the round-trip option.
    major, minor = (int(part) for part in pd.__version__.split(".")[:2])
    return (major, minor) >= (3, 1)


#: ``read_csv`` options that read back exactly the floats ``to_csv`` wrote.
EXACT_FLOATS: dict[str, str] = {} if _pandas_parses_floats_exactly() else {
    "float_precision": "round_trip"}


def read_csv_exact(data: bytes, dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Parse CSV ``data`` with ``dtypes``, floats read back bit for bit as they were written."""
    return pd.read_csv(io.BytesIO(data), dtype=None if dtypes is None else dict(dtypes),
                       **EXACT_FLOATS)


def _parse_csv(data: bytes, dtypes: Mapping[str, str]) -> pd.DataFrame:
    return read_csv_exact(data, dtypes)


def _unit_record(unit: Mapping[str, Any]) -> dict[str, Any]:
    """``unit`` as its sidecar stores it (JSON values: a tuple of seeds becomes a list)."""
    return {str(k): list(v) if isinstance(v, tuple | list) else v for k, v in unit.items()}


def write_run(path: Path, frame: pd.DataFrame, code: Mapping[str, Any],
              unit: Mapping[str, Any] | None = None) -> RunRecord:
    """Write the rows of one unit to ``path`` (CSV) and its sidecar, in that order.

    Parameters
    ----------
    path : Path
        The run file, ``<key>.csv``.
    frame : DataFrame
        The rows; column names must be distinct strings and values plain numbers, booleans
        or strings (they are checked to survive the CSV round trip).
    code : mapping
        What computed the rows (package version, git commit, schema), stored in the sidecar.
    unit : mapping, optional
        What identifies the unit: column name to its one value or its list of values, e.g.
        ``{"config_hash": "754797311399", "seed": [0, 1]}``. Stored in the sidecar;
        :func:`check_run` compares it with the unit asked for and with the rows.

    Returns
    -------
    RunRecord

    Raises
    ------
    TypeError
        If the rows would not read back equal to ``frame``; nothing is written then.
    """
    if not frame.columns.is_unique or not all(isinstance(c, str) for c in frame.columns):
        raise TypeError(f"the rows for {path.name} need distinct string column names; "
                        f"got {list(frame.columns)}")
    frame = frame.reset_index(drop=True)
    data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    dtypes = _dtypes(frame)
    try:
        pd.testing.assert_frame_equal(_parse_csv(data, dtypes), frame, check_exact=True)
    except (AssertionError, ValueError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise TypeError(f"the rows for {path.name} do not read back from CSV as they were "
                        f"computed ({detail}); give the columns plain int, float, bool or "
                        "str values") from None
    side = sidecar_path(path)
    side.unlink(missing_ok=True)  # the old sidecar must never describe the new data
    atomic_write_bytes(path, data)
    meta = {"format": FORMAT, "file": path.name, "bytes": len(data), "sha256": sha256_hex(data),
            "rows": len(frame), "dtypes": dtypes, "code": dict(code)}
    if unit is not None:
        meta["unit"] = _unit_record(unit)
    atomic_write_text(side, json.dumps(meta, indent=1) + "\n")
    return RunRecord(path, meta["sha256"], len(frame), dtypes, dict(code))


def refuse_non_files(*paths: Path, kind: str = "a run file") -> None:
    """Raise :class:`OutputDirError` if one of ``paths`` exists but is not a regular file.

    A folder (or a link to nowhere) where a file of ours (``kind``) belongs cannot be written
    over, and the runner never deletes what it did not write: the user has to move it.
    """
    for path in paths:
        if os.path.lexists(path) and not path.is_file():
            what = "a folder" if path.is_dir() else "not a regular file"
            raise OutputDirError(f"{path} is {what}, where the runner keeps {kind}; move it "
                                 "away and rerun")


def _check_rows(path: Path, data: bytes, record: RunRecord,
                unit: Mapping[str, Any] | None) -> None:
    """Check that ``data`` parses to the rows, columns and dtypes ``record`` states."""
    try:
        frame = _parse_csv(data, record.dtypes)
        inferred = _dtypes(read_csv_exact(data)) if record.rows else {}
    except (ValueError, TypeError, OverflowError) as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InvalidRunFile(f"run file {path} does not parse with the dtypes its sidecar "
                             f"records ({detail})") from None
    if len(frame) != record.rows or list(frame.columns) != list(record.dtypes):
        raise InvalidRunFile(f"run file {path} holds {len(frame)} rows and columns "
                             f"{list(frame.columns)[:20]}, where its sidecar records "
                             f"{record.rows} rows and columns {list(record.dtypes)[:20]}")
    # A value's type shows in the CSV text: a column the writer held as float64 reads back as
    # float64 without hints, and so on. Only strings may be recorded differently (a config
    # hash of digits is a string that looks like an int); anything else (float32 for a float64
    # column) would silently change the values.
    wrong = {c: d for c, d in record.dtypes.items()
             if d not in STRING_DTYPES and d != inferred.get(c, d)}
    if wrong:
        column, dtype = next(iter(wrong.items()))
        raise InvalidRunFile(f"run file {path}: its sidecar records column {column!r} as "
                             f"{dtype}, but the file holds {inferred[column]} values")
    for column, expected in (unit or {}).items():
        if column not in frame.columns:
            continue
        want = set(expected) if isinstance(expected, list | tuple) else {expected}
        found = set(frame[column].tolist())
        if not found <= want:
            shown = sorted(map(str, found))[:5]
            raise InvalidRunFile(f"run file {path} holds rows of {column} "
                                 f"{', '.join(shown)}{' ...' if len(found) > 5 else ''}, not "
                                 f"of this unit's {expected} (copied from another unit?)")


def check_run(path: Path, unit: Mapping[str, Any] | None = None) -> RunRecord | None:
    """Validate the run file ``path`` against its sidecar and, if given, its unit.

    Parameters
    ----------
    path : Path
        The run file, ``<key>.csv``.
    unit : mapping, optional
        The unit this file must belong to, as given to :func:`write_run`. The sidecar must
        record the same unit (when it records one), and each column named in ``unit`` may
        hold only its values.

    Returns
    -------
    RunRecord or None
        The record, or None when neither the file nor its sidecar exists (not run yet).

    Raises
    ------
    InvalidRunFile
        If the sidecar is missing or unreadable; names another file or unit; the file's size
        or SHA-256 differ from it; or the file does not parse to the rows, columns and dtypes
        it records. The unit is then recomputed.
    OutputDirError
        If the run file or its sidecar is a folder (or another non-file): it cannot be
        recomputed over.
    """
    side = sidecar_path(path)
    refuse_non_files(path, side)
    if not side.exists():
        if not path.exists():
            return None
        raise InvalidRunFile(f"run file {path} has no sidecar {side.name} (it was "
                             "interrupted before it finished, or written by an older version)")
    try:
        meta = json.loads(side.read_text("utf-8"))
        record = RunRecord(path, str(meta["sha256"]), int(meta["rows"]),
                           {str(k): str(v) for k, v in meta["dtypes"].items()},
                           dict(meta["code"]))
        size, version, name = int(meta["bytes"]), meta["format"], meta.get("file")
        recorded_unit = meta.get("unit")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise InvalidRunFile(f"run file {path}: its sidecar {side.name} is unreadable") from None
    if version != FORMAT:
        raise InvalidRunFile(f"run file {path}: its sidecar has format {version!r}, "
                             f"not {FORMAT}")
    if name != path.name:
        raise InvalidRunFile(f"run file {path}: its sidecar describes {str(name)[:100]!r}, not "
                             f"{path.name!r} (copied from another unit?)")
    if unit is not None and recorded_unit is not None and recorded_unit != _unit_record(unit):
        raise InvalidRunFile(f"run file {path}: its sidecar belongs to unit "
                             f"{str(recorded_unit)[:200]}, not {_unit_record(unit)} (copied "
                             "from another unit?)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidRunFile(f"run file {path} cannot be read ({exc.strerror or exc})") from None
    if len(data) != size:
        raise InvalidRunFile(f"run file {path} has {len(data)} bytes where its sidecar "
                             f"records {size} (truncated or overwritten)")
    if sha256_hex(data) != record.sha256:
        raise InvalidRunFile(f"run file {path} differs from the SHA-256 its sidecar records "
                             "(corrupted or edited)")
    _check_rows(path, data, record, unit)
    return record


def read_run(record: RunRecord) -> pd.DataFrame:
    """Read the rows of a validated run file with their recorded dtypes.

    Raises
    ------
    InvalidRunFile
        If the file changed since it was validated, or does not parse to the recorded shape.
    """
    data = record.path.read_bytes()
    if sha256_hex(data) != record.sha256:
        raise InvalidRunFile(f"run file {record.path} changed while the sweep was running")
    frame = _parse_csv(data, record.dtypes)
    if len(frame) != record.rows or list(frame.columns) != list(record.dtypes):
        raise InvalidRunFile(f"run file {record.path} does not parse to its recorded "
                             f"{record.rows} rows and columns {list(record.dtypes)}")
    return frame


# --------------------------------------------------------------------------- combined tables
def _table_paths(stem: Path) -> tuple[Path, Path, Path]:
    return stem.with_suffix(".csv"), stem.with_suffix(".parquet"), stem.with_suffix(".json")


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def inputs_digest(records: Sequence[RunRecord]) -> str:
    """Digest of the run files (names and SHA-256, in order) a combined table is built from."""
    return sha256_hex("\n".join(f"{r.path.name} {r.sha256}" for r in records).encode())


def tables_current(stem: Path, inputs: str) -> tuple[Path, ...] | None:
    """Return the table paths of ``stem`` if they were built from ``inputs`` and are intact.

    Returns None when the tables must be (re)written: no manifest, other inputs, a file
    missing or changed, or Parquet written without pyarrow here (or the reverse).
    """
    csv_path, parquet_path, manifest_path = _table_paths(stem)
    manifest = _read_manifest(manifest_path)
    if manifest is None or manifest.get("inputs") != inputs:
        return None
    paths = (csv_path, parquet_path) if find_spec("pyarrow") is not None else (csv_path,)
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {p.name for p in paths}:
        return None
    for path in paths:
        try:
            if sha256_hex(path.read_bytes()) != files[path.name]:
                return None
        except OSError:
            return None
    return paths


def write_tables(table: pd.DataFrame, stem: Path, inputs: str) -> tuple[Path, ...]:
    """Write ``stem.csv``, ``stem.parquet`` (with pyarrow) and their manifest; return the tables.

    Both tables are serialised before any file is touched. On any failure every table of
    ``stem`` is removed, so none is left stale beside another (the next sweep rebuilds them).

    Raises
    ------
    OutputDirError
        If one of the three paths is a folder (or another non-file); nothing is written then.
    """
    csv_path, parquet_path, manifest_path = _table_paths(stem)
    refuse_non_files(csv_path, parquet_path, manifest_path, kind="a combined table")
    try:
        payload = {csv_path: table.to_csv(index=False, lineterminator="\n").encode("utf-8")}
        if find_spec("pyarrow") is not None:
            buffer = io.BytesIO()
            table.to_parquet(buffer, index=False)
            payload[parquet_path] = buffer.getvalue()
        manifest_path.unlink(missing_ok=True)
        parquet_path.unlink(missing_ok=True)
        for path, data in payload.items():
            atomic_write_bytes(path, data)
        manifest = {"format": FORMAT, "inputs": inputs, "rows": len(table),
                    "dtypes": _dtypes(table),
                    "files": {p.name: sha256_hex(d) for p, d in payload.items()}}
        atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
    except BaseException:
        for path in (manifest_path, parquet_path, csv_path):
            path.unlink(missing_ok=True)
        raise
    return tuple(payload)


def warn_run_file(message: str) -> None:
    """Issue a :class:`RunFileWarning` (shown on stderr) attributed to the caller of the sweep."""
    warnings.warn(message, RunFileWarning, stacklevel=3)
