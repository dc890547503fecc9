"""The report of a run: ``OUT/report.html``, one self-contained page that explains the run.

For each experiment whose table is in ``OUT``: the experiment's figures (embedded), each with
its caption and the claim it supports (:data:`lowrank_theory.figures.make.FIGURES`), the figures
the table has nothing for and why, and the tables' provenance read from the tables themselves
and the files beside them: package version and git commit of the rows, each config's hash with
its swept fields and seeds, the table files with their SHA-256; above all, the command that made
them. ``lowrank-theory reproduce`` writes it after the figures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from lowrank_theory.figures.bands import BANDS, DEFAULT_BAND
from lowrank_theory.figures.html import HtmlPage
from lowrank_theory.figures.io import locate_table
from lowrank_theory.figures.make import FIGURES

__all__ = ["REPORT_NAME", "PROVENANCE", "provenance", "write_report"]

#: File name of the report in the output folder.
REPORT_NAME = "report.html"
#: The columns the report reads from a table: its identity and where its rows came from.
PROVENANCE: tuple[str, ...] = ("experiment", "config_hash", "seed", "package_version",
                               "git_commit")


def _read(path: Path) -> pd.DataFrame:
    """The :data:`PROVENANCE` columns of the table at ``path`` (those it has)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        return pd.read_parquet(path, columns=[c for c in PROVENANCE if c in names])
    header = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, usecols=[c for c in PROVENANCE if c in header], dtype=str)


def provenance(results: str | os.PathLike, name: str) -> dict[str, Any]:
    """Where the table of experiment ``name`` in ``results`` came from.

    Returns
    -------
    dict
        ``table`` (file), ``sha256``, ``rows``, ``package_version`` and ``git_commit`` (the
        distinct values in the rows), and ``configs``: one record per config hash with its
        seeds, its rows and the fields that differ between the table's configs (read from
        ``<name>/configs/<hash>.json`` beside the table).

    Raises
    ------
    FileNotFoundError
        If the table does not exist.
    """
    source = locate_table(results, name)
    rows = _read(source.path)
    configs = []
    fields: dict[str, dict[str, Any]] = {}
    for config_hash, group in rows.groupby("config_hash", sort=False):
        path = Path(results) / name / "configs" / f"{config_hash}.json"
        try:
            fields[str(config_hash)] = json.loads(path.read_text("utf-8"))["config"]
        except (OSError, ValueError, KeyError, TypeError):
            fields[str(config_hash)] = {}
        configs.append({"config_hash": str(config_hash),
                        "seeds": sorted({int(s) for s in group["seed"]}),
                        "rows": len(group)})
    swept = [k for k in dict.fromkeys(k for f in fields.values() for k in f)
             if len({json.dumps(f.get(k), default=str) for f in fields.values()}) > 1]
    for record in configs:
        config = fields[record["config_hash"]]
        record["fields"] = ", ".join(f"{k}={config.get(k)}" for k in swept) or "(one config)"
    return {"table": source.path.name, "sha256": source.sha256, "rows": len(rows),
            "package_version": sorted(set(rows.get("package_version", pd.Series(dtype=str))
                                          .astype(str))),
            "git_commit": sorted(set(rows.get("git_commit", pd.Series(dtype=str)).astype(str))),
            "swept_fields": swept, "configs": configs}


def _not_drawn(figures: Path) -> dict[str, str]:
    """Why each figure that was not drawn was not, from the figure folder's manifest."""
    from lowrank_theory.figures.make import MANIFEST_NAME

    try:
        drawn = json.loads((figures / MANIFEST_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return {stem: str(record["not_drawn"]) for stem, record in drawn.items()
            if isinstance(record, dict) and record.get("not_drawn")}


def write_report(results: str | os.PathLike, experiments: Iterable[str],
                 command: str, *, figures: str | os.PathLike | None = None,
                 band: str = DEFAULT_BAND, out: str | os.PathLike | None = None) -> Path:
    """Write the run's report (see the module notes); return its path.

    Parameters
    ----------
    results : path-like
        The output folder holding the tables (``OUT``).
    experiments : iterable of str
        The experiments of the run, in order (those without a table are skipped).
    command : str
        The command line that made the run.
    figures : path-like, optional
        The figure folder; default ``results/figures``.
    band : str
        The band the figures were drawn with (named in the report).
    out : path-like, optional
        The report's path; default ``results/report.html``.
    """
    results = Path(results)
    figures = results / "figures" if figures is None else Path(figures)
    page = HtmlPage(f"lowrank-theory run: {results}")
    page.heading("Command").code(command)
    page.paragraph(f"Bands in the figures: {BANDS[band]} over seeds "
                   "(geometric mean and interval of log y on log axes).")
    not_drawn = _not_drawn(figures)
    for name in experiments:
        try:
            record = provenance(results, name)
        except (FileNotFoundError, ValueError):
            continue
        page.heading(f"Experiment {name}")
        page.paragraph(f"Table {record['table']}: {record['rows']} rows, SHA-256 "
                       f"{record['sha256']}; package version "
                       f"{', '.join(record['package_version']) or 'unknown'}; git commit "
                       f"{', '.join(record['git_commit']) or 'unknown'}.")
        swept = ", ".join(record["swept_fields"]) or "none (one config)"
        page.paragraph(f"{len(record['configs'])} config(s); fields that differ between them: "
                       f"{swept}.")
        page.table(record["configs"], ["config_hash", "fields", "seeds", "rows"])
        for spec in FIGURES.get(name, ()):
            image = next((figures / f"{spec.stem}.{fmt}" for fmt in ("png", "svg")
                          if (figures / f"{spec.stem}.{fmt}").is_file()), None)
            if image is not None:
                page.image(image, spec.caption, spec.claim)
            elif any(figures.glob(f"{spec.stem}.*")):
                files = ", ".join(p.name for p in sorted(figures.glob(f"{spec.stem}.*")))
                page.paragraph(f"{spec.stem}: written as {files} (no PNG or SVG to embed). "
                               f"{spec.caption}")
        stems = {spec.stem for spec in FIGURES.get(name, ())}
        for stem, reason in not_drawn.items():
            if stem in stems:
                page.paragraph(reason)
    return page.write(results / REPORT_NAME if out is None else out)
