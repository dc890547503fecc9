"""Write every figure whose result table exists: ``make_figures(results, out)``.

A figure is redrawn only when it is out of date. ``out/manifest.json`` records, for each
figure, the SHA-256 of the table it was drawn from, a digest of the drawing code (the sources of
:data:`DRAWING_MODULES` and the matplotlib version) and the SHA-256 of its files; a figure is
redrawn when any of these changed or a file is missing.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from lowrank_theory.figures import atlas, plots, schemes
from lowrank_theory.figures.io import load_table, locate_table
from lowrank_theory.figures.style import FORMATS, save_figure
from lowrank_theory.simulations.store import atomic_write_text, ensure_folder

__all__ = [
    "FIGURES",
    "GENERATED_DIR",
    "PUBLISHED",
    "DRAWING_MODULES",
    "MANIFEST_NAME",
    "drawing_code_digest",
    "make_figures",
    "publish",
]

#: For each experiment, the figures drawn from its table: (file stem, drawing function).
FIGURES: dict[str, tuple[tuple[str, Callable[[pd.DataFrame], object]], ...]] = {
    "vary": (
        ("vary", plots.plot_vary),
        ("vary_paper_quantity", lambda table: plots.plot_vary(table,
                                                              quantities=("insample_error",))),
        ("vary_quirks", plots.plot_vary_quirks),
    ) + tuple(
        (f"vary_{p}", (lambda table, p=p: plots.plot_vary(table, params=(p,),
                                                          quantities=tuple(plots.VARY_QUANTITIES))))
        for p in plots.VARY_VALUES),
    "phase": (("phase_diagram", plots.plot_phase),),
    "rate": (("adaptation_rate", plots.plot_rate),),
    "landscape": (("landscape", plots.plot_landscape),),
    "schemes": (("schemes_budget", schemes.plot_schemes_budget),
                ("schemes_n", schemes.plot_schemes_n),
                ("schemes_forgetting", schemes.plot_schemes_forgetting),
                ("schemes_perturbation", schemes.plot_schemes_perturbation)),
    "atlas": (("atlas", atlas.plot_atlas),),
}

#: Where ``publish`` copies the PNGs the README shows.
GENERATED_DIR = Path(__file__).resolve().parent / "generated"
#: The figures the README shows (the per-parameter ``vary_*`` figures repeat the ``vary`` grids,
#: with both quantities).
PUBLISHED: tuple[str, ...] = ("vary", "vary_paper_quantity", "vary_quirks", "phase_diagram",
                             "adaptation_rate", "landscape", "schemes_budget")
#: Modules whose source decides what a figure looks like; a change to one redraws the figures.
DRAWING_MODULES: tuple[str, ...] = ("lowrank_theory.figures.make", "lowrank_theory.figures.plots", "lowrank_theory.figures.schemes",
                                    "lowrank_theory.figures.atlas",
                                    "lowrank_theory.figures.style", "lowrank_theory.simulations.configs")
#: Name of the record of drawn figures in the figure folder.
MANIFEST_NAME = "manifest.json"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def drawing_code_digest() -> str:
    """SHA-256 of the drawing code: the sources of :data:`DRAWING_MODULES`, matplotlib's version."""
    parts = [f"matplotlib {version('matplotlib')}".encode()]
    parts += [Path(importlib.import_module(m).__file__).read_bytes() for m in DRAWING_MODULES]
    return _digest(b"\0".join(parts))


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        drawn = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return drawn if isinstance(drawn, dict) else {}


def _write_manifest(path: Path, drawn: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(drawn, indent=1, sort_keys=True) + "\n")


def _up_to_date(record: Any, source: Mapping[str, str], paths: Iterable[Path]) -> bool:
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in source.items()):
        return False
    files = record.get("files")
    if not isinstance(files, dict):  # a damaged record: draw again
        return False
    try:
        return all(files.get(p.name) == _digest(p.read_bytes()) for p in paths)
    except OSError:
        return False


def make_figures(results: str | os.PathLike, out: str | os.PathLike | None = None,
                 only: Iterable[str] | None = None, *, force: bool = False) -> list[Path]:
    """Draw the figures of the experiments in ``only`` (default: all) from their tables.

    A figure whose table, drawing code and files are unchanged since it was drawn (see the
    module notes) is not drawn again.

    Parameters
    ----------
    results : path-like
        Directory holding the result tables (``<experiment>.csv`` / ``.parquet``).
    out : path-like, optional
        Where figures go; default ``results/figures``.
    only : iterable of str, optional
        Experiment names; those without a table are skipped.
    force : bool
        Redraw every figure, up to date or not.

    Returns
    -------
    list of Path
        The PNG and PDF files of the figures, drawn now or up to date.

    Raises
    ------
    OutputDirError
        If ``out`` (or a folder above it) is a file.
    TableError
        If a table is there but cannot be used (:func:`~lowrank_theory.figures.io.locate_table`).
    OSError
        If a figure or the manifest cannot be written; ``filename`` names it.
    """
    names = list(FIGURES) if only is None else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown experiments {unknown}; valid: {', '.join(FIGURES)}")
    out = Path(results) / "figures" if out is None else Path(out)
    manifest_path = out / MANIFEST_NAME
    drawn = _read_manifest(manifest_path)
    code = drawing_code_digest()
    written: list[Path] = []
    for name in names:
        try:
            source = locate_table(results, name)
        except FileNotFoundError:
            continue
        table = None
        state = {"table": source.path.name, "table_sha256": source.sha256, "code": code}
        for stem, draw in FIGURES[name]:
            paths = [out / f"{stem}.{fmt}" for fmt in FORMATS]
            if not force and _up_to_date(drawn.get(stem), state, paths):
                written += paths
                continue
            table = load_table(source) if table is None else table
            ensure_folder(out)  # a file in its place is named, not a FileExistsError
            if drawn.pop(stem, None) is not None:  # a killed redraw must not look up to date
                _write_manifest(manifest_path, drawn)
            paths = save_figure(draw(table), out, stem)
            drawn[stem] = {**state, "files": {p.name: _digest(p.read_bytes()) for p in paths}}
            _write_manifest(manifest_path, drawn)
            written += paths
    return written


def publish(paths: Iterable[Path], directory: str | os.PathLike = GENERATED_DIR,
            names: Iterable[str] = PUBLISHED) -> list[Path]:
    """Copy the PNGs among ``paths`` whose stem is in ``names`` into ``directory``.

    ``directory`` defaults to ``figures/generated``, the README's committed figures.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = set(names)
    copied = []
    for path in paths:
        if path.suffix == ".png" and path.stem in names:
            copied.append(Path(shutil.copy2(path, directory / path.name)))
    return copied
