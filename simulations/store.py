"""Files of a sweep on disk: atomic writes, self-checking run files, table manifests, the lock.

Every file is first written under a temporary name in its own folder,
``.<name>.<pid>.<random>.tmp`` (created with the permissions the user's umask gives), then
renamed into place with ``os.replace``, which is atomic on POSIX: a reader sees the old file or
the whole new one. A temporary whose process is gone is removed by the next sweep.

A run file ``<key>.csv`` counts as finished only beside its sidecar ``<key>.json``, written
after the data file is in place. The sidecar records the data file's size and SHA-256, its rows
and its columns with their dtypes, and the code that computed it; a run file without a sidecar,
or whose bytes differ from what its sidecar records, fails :func:`check_run` and is recomputed.
The rows are read back with the recorded dtypes, so a string of digits (a config hash such as
``"754797311399"``) stays a string.

A combined table ``<stem>.csv`` (and ``<stem>.parquet`` when pyarrow is installed) is described
by its manifest ``<stem>.json``: the tables' SHA-256, dtypes, and a digest of the run files it
was built from. The old manifest and Parquet file are removed before the new CSV is written and
the manifest is written last, so a new CSV never sits beside a stale Parquet file, and a failed
write leaves neither table.

While a sweep writes into an output folder it holds an exclusive lock on ``<out>/.lock``
(``fcntl.flock``; the file records the holder's pid). A second process that wants the folder
gets :class:`OutputLocked` at once instead of racing the first.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pandas as pd

#: Version of the sidecar and manifest formats; files of another version are redone.
FORMAT = 1
#: Name of the lock file in an output folder.
LOCK_NAME = ".lock"

__all__ = [
    "FORMAT", "LOCK_NAME", "InvalidRunFile", "OutputDirError", "OutputLocked", "RunFileWarning",
    "RunRecord", "atomic_write_bytes", "atomic_write_text", "check_output_dir", "check_run",
    "inputs_digest", "output_lock", "read_csv_exact", "read_run", "remove_stale_temporaries",
    "sha256_hex", "sidecar_path", "tables_current", "warn_run_file", "write_run", "write_tables",
]


class OutputDirError(ValueError):
    """The output folder is a file, cannot be created, or cannot be written."""


class OutputLocked(RuntimeError):
    """Another process holds the lock of the output folder."""


class InvalidRunFile(ValueError):
    """A run file is incomplete, corrupt, or does not match its sidecar."""


class RunFileWarning(UserWarning):
    """A run file failed validation and is recomputed, or was computed by other code."""


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- atomic files
def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The temporary file is created with mode ``0o666`` less the umask, like any new file, and
    its name holds this process's id, so concurrent writers never share a temporary.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        try:
            _write_fully(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists but belongs to someone else
        return True
    return True


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove the temporaries in ``directory`` whose writing process is gone; return them.

    A SIGKILL between creating a temporary and renaming it leaves it behind. It is never read
    (only final names are), but it would accumulate. A temporary of a live process (another
    writer) is kept.
    """
    removed = []
    for tmp in directory.glob(".*.tmp"):
        parts = tmp.name.split(".")
        pid = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None
        if pid is not None and pid != os.getpid() and _process_alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


# --------------------------------------------------------------------------- output folder
def check_output_dir(out: str | os.PathLike) -> Path:
    """Create the output folder ``out`` if needed and check that files can be written in it.

    Call it before any computation, so a bad ``--out`` fails at once, not after the work.

    Parameters
    ----------
    out : path-like
        The output folder.

    Returns
    -------
    Path
        ``out`` as a Path.

    Raises
    ------
    OutputDirError
        If ``out`` exists but is not a folder, cannot be created, or is not writable; the
        message names the folder and the reason.
    """
    path = Path(out)
    try:
        if path.exists() and not path.is_dir():
            raise OutputDirError(f"output folder {path} exists and is not a folder: "
                                 "give a folder, or a path that can be created")
        path.mkdir(parents=True, exist_ok=True)
    except OutputDirError:
        raise
    except OSError as exc:
        raise OutputDirError(f"cannot create output folder {path}: "
                             f"{exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputDirError(f"output folder {path} is not writable: "
                             f"{exc.strerror or exc}") from None
    return path


# Locks this process holds, by real path, with their depth: flock locks belong to an open file,
# so a nested ``output_lock`` on the same folder (the CLI locks, then each sweep locks) would
# otherwise conflict with itself.
_HELD: dict[str, int] = {}


@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on the output folder ``out`` (which must exist) while inside.

    Re-entrant within a process. On systems without ``fcntl`` no lock is taken.

    Raises
    ------
    OutputLocked
        If another process holds the lock; the message names the folder and the holder's pid.
    """
    path = Path(out)
    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
                who = f"process {holder}" if holder.isdigit() else "another process"
                raise OutputLocked(f"output folder {path} is in use by {who} (lock file "
                                   f"{path / LOCK_NAME}); wait for it to finish or choose "
                                   "another output folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[key] = 1
        try:
            yield path
        finally:
            del _HELD[key]
    finally:
        os.close(fd)  # releases the flock


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


def write_run(path: Path, frame: pd.DataFrame, code: Mapping[str, Any]) -> RunRecord:
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
    atomic_write_text(side, json.dumps(meta, indent=1) + "\n")
    return RunRecord(path, meta["sha256"], len(frame), dtypes, dict(code))


def check_run(path: Path) -> RunRecord | None:
    """Validate the run file ``path`` against its sidecar.

    Returns
    -------
    RunRecord or None
        The record, or None when neither the file nor its sidecar exists (not run yet).

    Raises
    ------
    InvalidRunFile
        If the sidecar is missing or unreadable, or the file's size or SHA-256 differ from it.
    """
    side = sidecar_path(path)
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
        size, version = int(meta["bytes"]), meta["format"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise InvalidRunFile(f"run file {path}: its sidecar {side.name} is unreadable") from None
    if version != FORMAT:
        raise InvalidRunFile(f"run file {path}: its sidecar has format {version!r}, "
                             f"not {FORMAT}")
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
    files = manifest.get("files", {})
    if set(files) != {p.name for p in paths}:
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
    """
    csv_path, parquet_path, manifest_path = _table_paths(stem)
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
