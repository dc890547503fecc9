"""The figures of each experiment, and drawing them: ``make_figures(results, out)``, ``draw(table)``.

:data:`FIGURES` lists, for each experiment table, its figures as :class:`FigureSpec` records:
the file stem, the drawing function, a caption (one sentence on what the figure shows) and the
claim it supports. A figure is drawn only where its table has data for it (``vary_T`` needs
several values of T, ``vary_quirks`` runs with ``authors_quirks``), and is true to the table's
grid (:mod:`lowrank_theory.figures.facets`): past the facet limit it is skipped with a
:class:`~lowrank_theory.figures.facets.FigureWarning` that names it and says why.

A figure is redrawn only when it is out of date. ``out/manifest.json`` records, for each
figure, the SHA-256 of the table it was drawn from, a digest of the drawing code (the sources of
:data:`DRAWING_MODULES` and the matplotlib version), the drawing options (band, formats, dpi,
style) and the SHA-256 of its files; a figure is redrawn when any of these changed or a file is
missing.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from lowrank_theory.figures import atlas, neural, plots, schemes, vary
from lowrank_theory.figures.bands import DEFAULT_BAND, check_band
from lowrank_theory.figures.facets import FigureSkipped, FigureWarning
from lowrank_theory.figures.io import load_table, locate_table
from lowrank_theory.figures.style import (
    ALL_FORMATS,
    FORMATS,
    load_style,
    save_figure,
    user_style,
)
from lowrank_theory.simulations.outdir import atomic_write_text, ensure_folder

__all__ = [
    "FigureSpec",
    "NothingToDraw",
    "FIGURES",
    "GENERATED_DIR",
    "PUBLISHED",
    "DRAWING_MODULES",
    "MANIFEST_NAME",
    "figure_spec",
    "draw",
    "drawing_code_digest",
    "make_figures",
    "publish",
    "check_formats",
    "figures_markdown",
]


class NothingToDraw(FigureSkipped):
    """A figure whose table has no data for it (not drawn, without a warning)."""


def _always(table: pd.DataFrame) -> str | None:
    return None


@dataclass(frozen=True)
class FigureSpec:
    """One figure of an experiment's table.

    Attributes
    ----------
    stem : str
        File name without suffix (``vary_quirks``).
    plot : callable
        ``plot(table, band=...) -> Figure``.
    caption : str
        One sentence on what the figure shows (README, docs/figures.md, the run's report).
    claim : str
        The claim of the theory it supports.
    applies : callable
        ``applies(table) -> str | None``: why the table has nothing to draw, or None.
    """

    stem: str
    plot: Callable[..., Any]
    caption: str
    claim: str
    applies: Callable[[pd.DataFrame], str | None] = field(default=_always)

    def draw(self, table: pd.DataFrame, band: str = DEFAULT_BAND):
        """Draw this figure from ``table``.

        Raises
        ------
        NothingToDraw
            If the table has no data for it (the message says why).
        FigureSkipped
            If its grid needs more facets than a figure holds.
        """
        reason = self.applies(table)
        if reason is not None:
            raise NothingToDraw(f"figure {self.stem} not drawn: {reason}")
        return self.plot(table, band=band)


def _varies(param: str) -> Callable[[pd.DataFrame], str | None]:
    def applies(table: pd.DataFrame) -> str | None:
        rows = vary._without_quirks(table)
        n = rows[param].nunique() if param in rows else 0
        return None if n > 1 else f"{param} takes {n} value(s) in the table, not several"
    return applies


def _has_quirks(table: pd.DataFrame) -> str | None:
    if "authors_quirks" in table and table["authors_quirks"].astype(bool).any():
        return None
    return "no runs with authors_quirks = true"


def _has_finite_n(table: pd.DataFrame) -> str | None:
    return None if (table["n"] < float("inf")).any() else "only population rows (n = inf)"


def _has_perturbations(table: pd.DataFrame) -> str | None:
    return (None if table["scheme"].str.startswith("perturbation").any()
            else "no perturbation schemes in the table")


_VARY_CLAIM = ("LoRA-ML's base fine-tunes to an unseen task with a rank-k adapter; SR's stalls at "
               "Theorem 1's floor (Theorems 1, 3 and 4).")
_PARAM_SENTENCE = {
    "d": "the dimension d", "T": "the number of retraining tasks T (rank 3k at T = 2)",
    "N": "the samples per retraining task N", "n": "the fine-tuning samples n",
    "k": "the rank k",
}
_SCHEMES_CLAIM = ("From A_SR no scheme with fewer than k(T+1) rank-equivalent parameters reaches "
                  "the new task (Theorem 1's floor); from LoRA-ML's base rank k suffices.")

#: For each experiment table, its figures.
FIGURES: dict[str, tuple[FigureSpec, ...]] = {
    "vary": (
        FigureSpec("vary", vary.plot_vary,
                   "Population excess loss on an unseen task against fine-tuning iteration "
                   "after LoRA-ML and SR retraining, a row of panels per varied parameter of "
                   "the vary set (d, T, N, n, k) with the others at the default point.",
                   _VARY_CLAIM),
        FigureSpec("vary_paper_quantity",
                   lambda table, band=DEFAULT_BAND: vary.plot_vary(
                       table, quantities=("insample_error",), band=band),
                   "The vary grid in the quantity the paper plots: the noise-free error "
                   "summed over the n fine-tuning inputs.", _VARY_CLAIM),
        FigureSpec("vary_quirks", vary.plot_vary_quirks,
                   "What the authors' two departures (noise sd sigma^2, their SR baseline) "
                   "change, one at a time, in the paper's quantity along T.",
                   "The paper's T = 2 SR gap comes from its SR baseline; with pooled least "
                   "squares SR reaches the new task at rank 3k as LoRA-ML does.",
                   applies=_has_quirks),
    ) + tuple(
        FigureSpec(f"vary_{p}",
                   (lambda table, band=DEFAULT_BAND, p=p: vary.plot_vary(
                       table, params=(p,), quantities=tuple(vary.VARY_QUANTITIES), band=band)),
                   f"Fine-tuning curves along {_PARAM_SENTENCE[p]}, in both quantities (the "
                   "population excess loss and the paper's).", _VARY_CLAIM,
                   applies=_varies(p))
        for p in vary.VARY_PARAMS),
    "phase": (
        FigureSpec("phase_diagram", plots.plot_phase,
                   "Median relative ||A^ - A*||_F of population LoRA-ML and the share of seeds "
                   "that recover A*, over T and k/d, with the kT = d boundary.",
                   "T >= 3 recovers A* exactly (Theorem 3); T = 1 and T = 2 do not in general "
                   "(Theorem 4)."),
    ),
    "rate": (
        FigureSpec("adaptation_rate", plots.plot_rate,
                   "Excess loss after rank-k fine-tuning on n samples from the LoRA-ML, SR and "
                   "oracle bases, against the k d sigma^2 / n reference line.",
                   "From LoRA-ML's base the excess loss decays like k d sigma^2 / n; from SR's "
                   "it stalls at the Theorem 1 floor."),
    ),
    "landscape": (
        FigureSpec("landscape", plots.plot_landscape,
                   "Histograms over random starts of the final objective and of the distance "
                   "of the base to A*, one row per T.",
                   "T = 2: every start reaches zero loss but A^ != A* in general (Theorem 4); "
                   "T = 3: A^ = A* (Theorem 3)."),
    ),
    "schemes": (
        FigureSpec("schemes_budget", schemes.plot_schemes_budget,
                   "Excess loss on the new task against the parameter budget for each "
                   "adaptation scheme from the SR and LoRA-ML bases, with the budget at which "
                   "each scheme from SR first reaches LoRA-ML's rank-k loss.", _SCHEMES_CLAIM),
        FigureSpec("schemes_n", schemes.plot_schemes_n,
                   "Excess loss against n at the budget of rank k(T+1), per scheme and base.",
                   _SCHEMES_CLAIM, applies=_has_finite_n),
        FigureSpec("schemes_forgetting", schemes.plot_schemes_forgetting,
                   "Forgetting of the retraining tasks against the fit of the new task, for "
                   "subspace-constrained starts (joined across beta) and the other schemes.",
                   "Preserving the retraining subspace trades fit of the new task for less "
                   "forgetting.", applies=_has_finite_n),
        FigureSpec("schemes_perturbation", schemes.plot_schemes_perturbation,
                   "Harmful-task loss gained against new-task loss lost by optimised and "
                   "random post-fine-tuning perturbations of equal norm.",
                   "An optimised perturbation raises the harmful task's loss far more than a "
                   "random one of the same norm.", applies=_has_perturbations),
    ),
    "atlas": (
        FigureSpec("atlas", atlas.plot_atlas,
                   "Per cell (d, T) and rank k, over random population families: the share with "
                   "a certified spurious local minimum, the share of paper-protocol runs that "
                   "reach A*, and their median rounds to 1e-6, with the kT = d boundary.",
                   "Spurious local minima exist only at small d (d <= k(T+1) here); where kT <= "
                   "d the paper's protocol reaches A* from its start (docs/theory.md, 12.4)."),
    ),
    "neural_shallow": (
        FigureSpec("neural_shallow", neural.plot_shallow,
                   "Fine-tuned error of the unseen task for the shallow network against d and "
                   "T, after LoRA-ML or SR retraining (hollow: rank-3k adapters at T = 2).",
                   "LoRA-ML retraining leaves a base that a rank-k adapter fine-tunes to the "
                   "unseen task; SR's base does less well."),
    ),
    "neural_vision": (
        FigureSpec("neural_vision",
                   lambda table, band=DEFAULT_BAND: neural.plot_pairs(
                       table, label="test accuracy on the unseen pair", band=band),
                   "Test accuracy on the unseen class pair after LoRA or last-layer "
                   "fine-tuning, per retraining method.",
                   "LoRA-ML retraining improves LoRA fine-tuning on an unseen class pair."),
    ),
    "neural_language": (
        FigureSpec("neural_language",
                   lambda table, band=DEFAULT_BAND: neural.plot_pairs(
                       table, label="hits@1 of 20 candidates", band=band),
                   "hits@1 of 20 candidates on the unseen persona after LoRA fine-tuning, per "
                   "retraining method.",
                   "LoRA-ML retraining improves LoRA fine-tuning on an unseen persona."),
    ),
}

#: Where ``publish`` copies the PNGs the README shows.
GENERATED_DIR = Path(__file__).resolve().parent / "generated"
#: The figures the README shows (the per-parameter ``vary_*`` figures repeat the ``vary`` grids,
#: with both quantities).
PUBLISHED: tuple[str, ...] = ("vary", "vary_paper_quantity", "vary_quirks", "phase_diagram",
                             "adaptation_rate", "landscape", "schemes_budget")
#: Modules whose source decides what a figure looks like; a change to one redraws the figures.
DRAWING_MODULES: tuple[str, ...] = (
    "lowrank_theory.figures.make", "lowrank_theory.figures.plots", "lowrank_theory.figures.vary",
    "lowrank_theory.figures.schemes", "lowrank_theory.figures.neural",
    "lowrank_theory.figures.atlas",
    "lowrank_theory.figures.facets", "lowrank_theory.figures.bands",
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


def figure_spec(name: str) -> tuple[str, FigureSpec]:
    """The experiment and :class:`FigureSpec` of the figure ``name`` (a file stem).

    Raises
    ------
    ValueError
        If no experiment has a figure of that name; the message lists them.
    """
    for experiment, specs in FIGURES.items():
        for spec in specs:
            if spec.stem == name:
                return experiment, spec
    names = [spec.stem for specs in FIGURES.values() for spec in specs]
    raise ValueError(f"figure must be one of {', '.join(names)}; got {name!r}")


def draw(table: pd.DataFrame, figure: str | None = None, *, band: str = DEFAULT_BAND,
         style: Mapping[str, Any] | str | os.PathLike | None = None):
    """Draw a figure from a DataFrame: a run's table, or any subset of its rows.

    Parameters
    ----------
    table : DataFrame
        Rows of one experiment's tidy table (e.g. from
        :func:`~lowrank_theory.figures.io.load_results`, filtered as you like).
    figure : str, optional
        The figure's name (a key of its :class:`FigureSpec`, as ``vary_quirks``); default: the
        experiment's first figure (the table's ``experiment`` column says which).
    band : {"ci95", "minmax"}
        The band around means over seeds.
    style : mapping, path or None
        A matplotlib style (rc parameters or an ``.mplstyle`` file) over the house style.

    Returns
    -------
    matplotlib.figure.Figure
        Save it with ``fig.savefig(...)`` or :func:`~lowrank_theory.figures.style.save_figure`.

    Raises
    ------
    ValueError
        If the figure is unknown, belongs to another experiment than the table's rows, or the
        rows have nothing to draw for it (the message says why).
    """
    check_band(band)
    experiments = (list(dict.fromkeys(map(str, table["experiment"])))
                   if "experiment" in table.columns else [])
    if figure is None:
        if len(experiments) != 1 or experiments[0] not in FIGURES:
            raise ValueError("figure: name one (e.g. draw(table, 'vary')); the table's "
                             f"experiment column holds {experiments or 'nothing'}")
        figure = FIGURES[experiments[0]][0].stem
    experiment, spec = figure_spec(figure)
    if experiments and experiments != [experiment]:
        raise ValueError(f"figure {figure!r} draws the {experiment!r} table, but the rows are "
                         f"of {', '.join(map(repr, experiments))}")
    if table.empty:
        raise ValueError("table has no rows")
    try:
        with user_style(style):
            return spec.draw(table, band=band)
    except FigureSkipped as exc:
        raise ValueError(str(exc)) from None


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """``formats`` as a tuple, after checking each is one of :data:`ALL_FORMATS`."""
    formats = tuple(dict.fromkeys(formats))
    bad = [f for f in formats if f not in ALL_FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be among {', '.join(ALL_FORMATS)}; got "
                         f"{', '.join(bad) or 'none'}")
    return formats


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def make_figures(results: str | os.PathLike, out: str | os.PathLike | None = None,
                 only: Iterable[str] | None = None, *, force: bool = False,
                 formats: Sequence[str] = FORMATS, dpi: float | None = None,
                 style: str | os.PathLike | None = None,
                 band: str = DEFAULT_BAND) -> list[Path]:
    """Draw the figures of the experiments in ``only`` (default: all) from their tables.

    A figure whose table, drawing code, options and files are unchanged since it was drawn
    (see the module notes) is not drawn again. A figure the table has nothing for is not drawn
    (and its old files, if any, are removed); one whose grid needs more facets than a figure
    holds is skipped with a :class:`~lowrank_theory.figures.facets.FigureWarning`.

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
    formats : sequence of str
        File formats, among :data:`~lowrank_theory.figures.style.ALL_FORMATS`.
    dpi : float, optional
        Resolution of raster formats (default: the style's ``savefig.dpi``, 150).
    style : path-like, optional
        A matplotlib ``.mplstyle`` file applied over the house style.
    band : {"ci95", "minmax"}
        The band around means over seeds (:mod:`lowrank_theory.figures.bands`).

    Returns
    -------
    list of Path
        The files of the figures, drawn now or up to date.

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
    formats = check_formats(formats)
    check_band(band)
    if dpi is not None and not dpi > 0:
        raise ValueError(f"dpi must be a number > 0, got {dpi}")
    params = {} if style is None else load_style(style)
    options = {"band": band, "dpi": dpi, "formats": list(formats),
               "style": _digest(json.dumps(params, sort_keys=True, default=str).encode())}
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
        state = {"table": source.path.name, "table_sha256": source.sha256, "code": code,
                 "options": options}
        for spec in FIGURES[name]:
            paths = [out / f"{spec.stem}.{fmt}" for fmt in formats]
            record = drawn.get(spec.stem)
            if not force and isinstance(record, dict) and record.get("not_drawn"):
                if _up_to_date(record, state, []):
                    continue  # the same table had nothing for it, or too many facets
            elif not force and _up_to_date(record, state, paths):
                written += paths
                continue
            table = load_table(source) if table is None else table
            ensure_folder(out)  # a file in its place is named, not a FileExistsError
            if drawn.pop(spec.stem, None) is not None:  # a killed redraw must not look up to date
                _write_manifest(manifest_path, drawn)
            with user_style(params):
                try:
                    fig = spec.draw(table, band=band)
                except FigureSkipped as exc:
                    _remove(out / f"{spec.stem}.{fmt}" for fmt in ALL_FORMATS)
                    if not isinstance(exc, NothingToDraw):
                        warnings.warn(str(exc), FigureWarning, stacklevel=2)
                    drawn[spec.stem] = {**state, "not_drawn": str(exc), "files": {}}
                    _write_manifest(manifest_path, drawn)
                    continue
                paths = save_figure(fig, out, spec.stem, formats, dpi=dpi)
            drawn[spec.stem] = {**state, "files": {p.name: _digest(p.read_bytes()) for p in paths}}
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


def figures_markdown() -> str:
    """The text of ``docs/figures.md``: every figure, what it shows and the claim it supports."""
    out = [
        "# Figures",
        "",
        "<!-- Generated from lowrank_theory.figures.make.FIGURES by `make docs` "
        "(lowrank-theory describe --docs docs); do not edit: tests/test_docs_generated.py "
        "fails when it is out of date. -->",
        "",
        "`lowrank-theory reproduce` draws these from each experiment's table into "
        "`OUT/figures/STEM.png` and `.pdf` (`--format png,pdf,svg`, `--dpi`, `--style "
        "FILE.mplstyle`), and `OUT/report.html` shows them with their captions and claims; "
        "`python -m lowrank_theory.figures OUT` redraws them from the tables alone, and "
        "`lowrank_theory.figures.draw(table, STEM)` draws one from a DataFrame.",
        "",
        "Every figure is true to its table's grid: a swept config field that a figure does not "
        "draw itself (as its x axis, its panels or its curves) becomes a facet, a block of the "
        "figure titled with the field's value; past 8 facets the figure is skipped with a "
        "message naming it, and a figure the table has no data for is not drawn "
        "(lowrank_theory.figures.facets). Bands are the 95% t-interval of the mean over seeds "
        "(of log y, around the geometric mean, on log axes), or min-max with `--band minmax`; "
        "each figure's title names its band.",
        "",
    ]
    for experiment, specs in FIGURES.items():
        out += [f"## Table `{experiment}`", ""]
        out += [f"- `{spec.stem}`: {spec.caption} *Claim:* {spec.claim}" for spec in specs]
        out.append("")
    return "\n".join(out)
