"""Reading result tables: the only input the figures have.

A table ``<name>.csv`` (and ``<name>.parquet``) may come with a manifest ``<name>.json``, written
by ``lowrank-theory reproduce`` after the tables: their SHA-256 and column dtypes. A table that
differs from its manifest is stale or partly written and is not used; a CSV is read with the
manifest's dtypes, so a string of digits (a config hash such as ``"754797311399"``) stays a
string.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pandas as pd
from lowrank_theory.simulations.store import read_csv_exact

__all__ = [
    "STRING_COLUMNS",
    "TableError",
    "TableSource",
    "locate_table",
    "load_table",
    "read_table",
]

#: Columns read as strings from a CSV without a manifest (identifiers, never numbers).
STRING_COLUMNS: tuple[str, ...] = ("experiment", "config_hash", "package_version", "git_commit",
                                   "timestamp")


class TableError(ValueError):
    """A result table is there but cannot be used: not a file, or no file matches its manifest."""


@dataclass(frozen=True)
class TableSource:
    """The file a table is read from, its bytes, their SHA-256 and the manifest's dtypes."""

    path: Path
    data: bytes
    sha256: str
    dtypes: dict[str, str] | None


def _manifest(path: Path) -> dict | None:
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        warnings.warn(f"table manifest {path} is unreadable; ignoring it", stacklevel=3)
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict) or (
            not isinstance(manifest.get("dtypes", {}), dict)):
        warnings.warn(f"table manifest {path} is not a manifest of tables; ignoring it",
                      stacklevel=3)
        return None
    return manifest


def locate_table(results: str | os.PathLike, name: str) -> TableSource:
    """Find the table of experiment ``name`` in ``results``: Parquet if usable, else CSV.

    Raises
    ------
    FileNotFoundError
        If neither file exists; the message gives the command that writes it.
    TableError
        If a table's path is a folder (or another non-file), or the tables exist but none
        matches its manifest.
    """
    stem = Path(results) / name
    manifest_path = stem.with_suffix(".json")
    manifest = _manifest(manifest_path)
    files = manifest.get("files", {}) if manifest else {}
    candidates = [p for p in (stem.with_suffix(".parquet"), stem.with_suffix(".csv"))
                  if p.exists() and (p.suffix == ".csv" or find_spec("pyarrow") is not None)]
    for path in candidates:
        if not path.is_file():
            raise TableError(f"{path} is not a file (a folder?), where the table of {name!r} "
                             "belongs; move it away")
    if not candidates:
        raise FileNotFoundError(
            f"no result table for {name!r} in {results}: run "
            f"`lowrank-theory reproduce --only {name} --out {results}` first")
    for path in candidates:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if manifest is not None and files.get(path.name) != digest:
            warnings.warn(f"{path} does not match its manifest {manifest_path.name} (stale or "
                          "partly written); not using it", stacklevel=3)
            continue
        dtypes = manifest.get("dtypes") if manifest is not None else None
        return TableSource(path, data, digest, dtypes)
    raise TableError(f"no table of {name!r} in {results} matches its manifest: rerun "
                     f"`lowrank-theory reproduce --only {name} --out {results}`")


def load_table(source: TableSource) -> pd.DataFrame:
    """Parse the table in ``source`` (string identifiers stay strings)."""
    if source.path.suffix == ".parquet":
        return pd.read_parquet(io.BytesIO(source.data))
    if source.dtypes is None:
        header = pd.read_csv(io.BytesIO(source.data), nrows=0).columns
        dtypes = {c: str for c in STRING_COLUMNS if c in header}
    else:
        dtypes = source.dtypes
    return read_csv_exact(source.data, dtypes)


def read_table(results: str | os.PathLike, name: str) -> pd.DataFrame:
    """Read the combined table of experiment ``name`` from the directory ``results``.

    Prefers ``name.parquet`` (written when pyarrow is installed), else ``name.csv``; a file
    that differs from the manifest ``name.json`` is skipped with a warning. Raises as
    :func:`locate_table` does.
    """
    return load_table(locate_table(results, name))
