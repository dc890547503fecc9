"""Reading result tables: the only input the figures have."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def read_table(results: str | os.PathLike, name: str) -> pd.DataFrame:
    """Read the combined table of experiment ``name`` from the directory ``results``.

    Prefers ``name.parquet`` (written when pyarrow is installed), else ``name.csv``.

    Raises
    ------
    FileNotFoundError
        If neither file exists; the message gives the command that writes it.
    """
    stem = Path(results) / name
    parquet, csv = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    if parquet.exists():
        try:
            return pd.read_parquet(parquet)
        except ImportError:  # a Parquet file but no pyarrow here: the CSV has the same rows
            pass
    if csv.exists():
        return pd.read_csv(csv)
    raise FileNotFoundError(
        f"no result table for {name!r} in {results}: run "
        f"`lowrank-theory reproduce --only {name} --out {results}` first")
