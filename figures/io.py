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
    "load_results",
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


def _source_of(path: Path) -> TableSource:
    """The table file ``path`` with the dtypes of its manifest ``<stem>.json``, if any."""
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"a table is a .csv or .parquet file, got {path}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no table file {path}") from None
    manifest = _manifest(path.with_suffix(".json"))
    dtypes = manifest.get("dtypes") if manifest is not None else None
    return TableSource(path, data, hashlib.sha256(data).hexdigest(), dtypes)


def load_table(source: TableSource | str | os.PathLike) -> pd.DataFrame:
    """Parse a table: a located :class:`TableSource`, or the path of a ``.csv``/``.parquet``.

    String identifiers (config hashes made of digits) stay strings.
    """
    if not isinstance(source, TableSource):
        source = _source_of(Path(source))
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


def _tables_in(folder: Path) -> list[str]:
    return sorted({p.stem for p in folder.glob("*.csv")} | {p.stem for p in folder.glob("*.parquet")})


def load_results(out: str | os.PathLike = "results", name: str | None = None) -> pd.DataFrame:
    """A run's tidy table as a DataFrame, from its ``--out`` folder and a name.

    ``name`` is an experiment (``"vary"``, ``"neural_shallow"`` or just ``"shallow"``) whose
    table is in ``out``, or a sweep (a sweep file's stem, whose results ``reproduce --config``
    writes to ``out/<stem>``, holding one table). Parquet is read when pyarrow is installed and
    the file matches its manifest, else CSV; identifiers stay strings. Without ``name``, the one
    table in ``out``.

    Parameters
    ----------
    out : path-like
        The output folder of ``lowrank-theory reproduce`` or ``neural``.
    name : str, optional
        An experiment or a sweep name.

    Returns
    -------
    DataFrame
        One row per (config, seed, ...), with the config's fields, ``config_hash``, ``seed``
        and the provenance columns.

    Raises
    ------
    FileNotFoundError
        If there is no such table; the message lists the tables that are there.
    ValueError
        If the name is ambiguous (no name and several tables, or a sweep folder with several).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"config_hash": ["0123"], "seed": [0], "loss": [0.5]}).to_csv(
    ...     folder / "phase.csv", index=False)
    >>> load_results(folder, "phase")
      config_hash  seed  loss
    0        0123     0   0.5
    """
    out = Path(out)
    if name is None:
        tables = _tables_in(out)
        if len(tables) != 1:
            raise ValueError(f"name: give one of the tables in {out}: "
                             f"{', '.join(tables) or 'none'}")
        name = tables[0]
    for stem in (name, f"neural_{name}"):
        try:
            return read_table(out, stem)
        except FileNotFoundError:
            pass
    folder = out / name
    if folder.is_dir():
        tables = _tables_in(folder)
        if len(tables) == 1:
            return read_table(folder, tables[0])
        if tables:
            raise ValueError(f"sweep {name!r} in {out} holds several tables "
                             f"({', '.join(tables)}); give load_results({str(folder)!r}, NAME)")
    found = _tables_in(out) + [f"{d.name} (sweep)" for d in sorted(out.glob("*"))
                               if d.is_dir() and _tables_in(d)]
    raise FileNotFoundError(f"no table or sweep {name!r} in {out}; found: "
                            f"{', '.join(found) or 'nothing'}")
